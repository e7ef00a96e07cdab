"""A person's own folder as training data: the samples they kept, to fine-tune a model on.

    python sample.py --model music --prompt "a jig in D major" --num 64 --out kept/   # then delete the misses
    python train.py --config configs/music.py --workdir runs/mine \\
        --config.init_from=pretrained:music --config.data=midi:kept/

- `midi:DIR`: every `.mid`/`.midi` file, read as a monophonic melody (zoo.melody.midi; the `key:` text of
  zoo's own files gives the exact mode). Its caption, in the corpus's form ("Title. A jig in D major,
  6/8."), takes the title and genre from `captions.txt` in DIR ("FILE<TAB>TEXT" or "FILE: TEXT" lines),
  else from the name the file gives itself (zoo's samples carry their prompt: "a jig in D major"), else
  from the file name ("the-rocky-road-03.mid" -> "The Rocky Road"); a genre word in it (jig, reel,
  hornpipe, air, ...) is the genre, else "tune".
- `images:DIR`: every image Pillow opens (zoo.picture: converted, inverted, cropped and
  resized to 28x28 grey, as `--init` reads a picture). The class is the subfolder's name for a picture in a
  subfolder (kept/sneaker/IMG_0001.jpg), else the file name without its numbers ("ankle-boot-3.png" ->
  "ankle boot"); a name a Fashion-MNIST class answers to ("sneaker", "a pair of jeans") becomes that class,
  so its captions are the curated ones. Unreadable or blank pictures are skipped.

Nothing in DIR is written or moved. An empty folder, or one with nothing usable, is a UsageError.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.data.images import ImageDataset
    from zoo.data.music import TuneCorpus

MIDI_SUFFIXES = (".mid", ".midi")
CAPTIONS_FILE = "captions.txt"
GENRES = ("jig", "reel", "hornpipe", "air", "polka", "slide", "march", "waltz", "strathspey", "slip jig",
          "song", "dance", "lament")


def _folder(spec: str, prefix: str) -> Path:
    path = Path(spec[len(prefix):]).expanduser()
    if not str(spec[len(prefix):]).strip():
        raise UsageError(f"{prefix}DIR needs a folder, e.g. {prefix}kept/")
    if not path.is_dir():
        raise UsageError(f"{spec}: no such folder: {path}")
    return path


def list_files(spec: str) -> list[Path]:
    """The files a `midi:DIR` or `images:DIR` spec names (sorted; subfolders included), for loading and for
    counting the items of a small set (zoo/train/small_data.py)."""
    from zoo.picture import IMAGE_SUFFIXES

    prefix, suffixes = ("midi:", MIDI_SUFFIXES) if spec.startswith("midi:") else ("images:", IMAGE_SUFFIXES)
    folder = _folder(spec, prefix)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def name_words(path: Path) -> str:
    """A file name as words: separators to spaces, numbers and a trailing copy mark dropped."""
    words = re.sub(r"[\d]+", " ", re.sub(r"[_\-.]+", " ", path.stem))
    return re.sub(r"\s+", " ", words).strip()


def _captions(folder: Path) -> dict[str, str]:
    file = folder / CAPTIONS_FILE
    if not file.is_file():
        return {}
    out = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        name, sep, text = line.partition("\t") if "\t" in line else line.partition(":")
        if sep and name.strip() and text.strip():
            out[name.strip()] = text.strip()
    return out


def load_midi_folder(spec: str) -> TuneCorpus:
    """The tunes in a `midi:DIR` folder, as a zoo.data.music.TuneCorpus (see the module docstring)."""
    from zoo.data.music import Tune, TuneCorpus
    from zoo.melody.encoding import TICKS_PER_QUARTER
    from zoo.melody.midi import melody_from_midi, midi_title

    folder = _folder(spec, "midi:")
    files = list_files(spec)
    if not files:
        raise UsageError(f"{spec}: no MIDI files (.mid, .midi) in {folder}")
    captions, tunes, skipped = _captions(folder), [], {}
    for path in files:
        try:
            melody = melody_from_midi(path)
        except UsageError as e:
            skipped[str(e)] = skipped.get(str(e), 0) + 1
            continue
        relative = path.relative_to(folder).as_posix()
        text = (captions.get(relative) or captions.get(path.name) or captions.get(path.stem) or midi_title(path)
                or name_words(path))
        lowered = text.lower()
        genre = next((g for g in sorted(GENRES, key=len, reverse=True) if re.search(rf"\b{g}s?\b", lowered)), "tune")
        title = text[:1].upper() + text[1:] if text else ""
        pitches = np.asarray([-1 if p is None else p for p, _ in melody.notes], np.int16)
        ticks = np.asarray([round(d * TICKS_PER_QUARTER) for _, d in melody.notes], np.int32)
        tunes.append(Tune(title.rstrip("."), genre, melody.meter, melody.tonic, melody.mode, pitches, ticks,
                          "kept", str(path)))
    if not tunes:
        raise UsageError(f"{spec}: none of the {len(files)} MIDI files holds a usable melody")
    return TuneCorpus(tunes, {"unreadable": sum(skipped.values())} if skipped else {})


def class_of(words: str, class_names: tuple[str, ...] | list[str]) -> str:
    """The class a name answers to: a known class whose name or curated caption it is, else the name."""
    from zoo.data.image_captions import captions_for

    wanted = re.sub(r"^(an?|the|a pair of|pair of)\s+", "", words.lower()).strip()
    for name in class_names:
        forms = {name.lower(), *(re.sub(r"^(an?|the)\s+", "", c.lower()) for c in captions_for(name))}
        if wanted in forms or wanted.rstrip("s") in forms:
            return name
    return wanted


def load_image_folder(spec: str, shape: tuple[int, int, int] = (28, 28, 1), val_fraction: float = 0.1
                      ) -> ImageDataset:
    """The pictures in an `images:DIR` folder as a zoo.data.images.ImageDataset, split by a hash of the
    pixels (at least one picture held out once there are two)."""
    from zoo.data.images import FASHION_MNIST_CLASSES, ImageDataset
    from zoo.picture import IMAGE_SUFFIXES, load_image

    folder = _folder(spec, "images:")
    files = list_files(spec)
    if not files:
        raise UsageError(f"{spec}: no pictures ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    images, names, unreadable = [], [], 0
    for path in files:
        try:
            pixels, _ = load_image(path, shape)
        except UsageError:  # a damaged or blank file (or a macOS ._ companion): skipped, as MIDI files are
            unreadable += 1
            continue
        images.append(np.round(pixels * 255).astype(np.uint8))
        # A picture in a subfolder takes the subfolder's name (kept/sneaker/IMG_0001.jpg); else its own.
        words = path.parent.name if path.parent != folder else name_words(path)
        names.append(class_of(words or folder.name, FASHION_MNIST_CLASSES))
    if not images:
        raise UsageError(f"{spec}: none of the {len(files)} pictures is readable")
    class_names = tuple(dict.fromkeys(sorted(names)))
    labels = np.asarray([class_names.index(n) for n in names], np.int32)
    stack = np.stack(images)
    hashes = np.asarray([int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=8).digest(), "big")
                         for image in stack], np.uint64)
    held = hashes < np.uint64(int(val_fraction * 2**64))
    if len(stack) >= 2 and not held.any():
        held[int(np.argmin(hashes))] = True
    if held.all():
        held[int(np.argmax(hashes))] = False
    return ImageDataset(f"images:{folder}", stack[~held], labels[~held], stack[held], labels[held], class_names)
