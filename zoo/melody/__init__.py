"""Melodies: the event encoding the `music` model reads and writes, its grammar, MIDI files, and rendering."""
