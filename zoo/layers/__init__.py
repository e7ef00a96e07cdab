"""Layers the model families share (zoo.models builds from them); none of them is a model."""
