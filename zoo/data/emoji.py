"""The `emoji` image corpus: 64x64 colour pictures of ~1,900 concepts in five artwork styles, each with words.

Every picture comes from an npm package (tarballs in `data_dir()`, fetched by scripts/fetch_data.sh) and
every concept's words from the Unicode CLDR annotations that `emojibase-data` ships:

    style          package (artwork licence)                         files read
    google         emoji-datasource-google (Noto Emoji, Apache-2.0)  package/img/google/64/*.png
    twitter        emoji-datasource-twitter (Twemoji, CC-BY-4.0)     package/img/twitter/64/*.png
    openmoji       openmoji (OpenMoji, CC-BY-SA-4.0)                  package/color/svg/*.svg
    fluent-flat    fluentui-emoji (Fluent Emoji, MIT)                package/icons/flat/*.svg
    fluent-modern  fluentui-emoji (Fluent Emoji, MIT)                package/icons/modern/*.svg

A concept is one emojibase entry (its CLDR name, e.g. "beach with umbrella", and keywords, e.g. beach,
umbrella), without skin-tone variants and without the "component" group (bare hair styles and skin-tone
swatches are not pictures of anything). Pictures are matched to concepts by code point sequence (variation
selectors ignored), Fluent's by its file name, the CLDR name as a slug (its default skin tone for people and
hands). SVGs are rendered at 64x64 with
resvg; every picture is composited on white and stored as uint8 RGB. The parse takes about 20 s and is
cached as one .npz under `data_dir()/cache`, keyed by the packages' files and this module. The package
versions are pinned (VERSIONS): another would change the concepts, the pictures and the split.

Captions (what the models are conditioned on): each concept's name, and its name with its keywords,
"beach with umbrella: beach, umbrella, sand", the form a person's free prompt lands near.

Split: in every other concept (by a hash of its name) that has pictures in at least three styles, the
picture of one style (also by hash) is held out as a test picture: about 950 pictures that neither the
generators nor the benchmarks' judge ever train on, in all styles, of concepts that are also seen in training
in their other styles. A spec names styles to keep: `emoji` (all five) or `emoji:google,twitter`; with fewer
than three styles a concept needs a picture in each of them to lend one, and with one style the held-out
concepts are not seen in training at all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data.sources import data_dir
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

SIZE = 64
BACKGROUND = (255, 255, 255)
COMPONENT_GROUP = 2  # emojibase's "component" group: hair styles and skin-tone swatches
MIN_STYLES_FOR_TEST = 3


@dataclass(frozen=True)
class Style:
    name: str
    package: str  # npm package; its tarball in data_dir() is `{package}-{version}.tgz`
    licence: str  # of the artwork
    member: str  # a regular expression for the files of this style; group 1 is the key
    key: str  # "codepoints" (matched by code point sequence) or "slug" (by the CLDR name as a slug)


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("google", "emoji-datasource-google", "Noto Emoji: Apache-2.0",
          r"package/img/google/64/([0-9a-f-]+)\.png", "codepoints"),
    Style("twitter", "emoji-datasource-twitter", "Twemoji: CC-BY-4.0",
          r"package/img/twitter/64/([0-9a-f-]+)\.png", "codepoints"),
    Style("openmoji", "openmoji", "OpenMoji: CC-BY-SA-4.0", r"package/color/svg/([0-9A-F-]+)\.svg", "codepoints"),
    Style("fluent-flat", "fluentui-emoji", "Fluent Emoji: MIT", r"package/icons/flat/([a-z0-9-]+)\.svg", "slug"),
    Style("fluent-modern", "fluentui-emoji", "Fluent Emoji: MIT", r"package/icons/modern/([a-z0-9-]+)\.svg", "slug"),
)}
EMOJIBASE = "emojibase-data"
# The versions scripts/fetch_data.sh packs: another version would silently change the pictures, the concepts
# and so the held-out split that the judge's and the models' figures are measured on.
VERSIONS = {EMOJIBASE: "17.0.0", "emoji-datasource-google": "16.0.0", "emoji-datasource-twitter": "16.0.0",
            "openmoji": "17.0.0", "fluentui-emoji": "1.3.0"}


@dataclass(frozen=True)
class Concept:
    label: str  # the CLDR name, "beach with umbrella"
    tags: tuple[str, ...]  # the CLDR keywords
    hexcode: str  # "1F3D6"
    group: str  # emojibase's group name, "travel-places"

    @property
    def captions(self) -> tuple[str, str]:
        """The name, and the name with its keywords (those not already in the name)."""
        words = set(self.label.lower().split())
        extra = [t for t in self.tags if t.lower() not in words]
        return (self.label, f"{self.label}: {', '.join(extra)}" if extra else self.label)


@dataclass(frozen=True, eq=False)
class EmojiCorpus:
    """All pictures: uint8 images [N, 64, 64, 3] (on white), their concept [N] and style [N] indices, and
    `test` [N], True for the held-out pictures."""

    concepts: tuple[Concept, ...]
    styles: tuple[str, ...]
    images: np.ndarray
    concept: np.ndarray
    style: np.ndarray
    test: np.ndarray

    def counts(self) -> dict[str, int]:
        """Pictures per style, and concepts (those with at least one picture)."""
        out = {s: int((self.style == i).sum()) for i, s in enumerate(self.styles)}
        out["concepts"] = int(len(np.unique(self.concept)))
        return out


def slug(label: str) -> str:
    """A CLDR name as Fluent Emoji's file names spell it: "flag: Côte d’Ivoire" -> "flag-cote-divoire"."""
    import unicodedata

    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"['’.]", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def codepoints(key: str) -> str:
    """A code point sequence without variation selectors, upper case: "1f3d6-fe0f" -> "1F3D6"."""
    return "-".join(p for p in key.upper().split("-") if p and p != "FE0F")


def tarball(package: str) -> Path:
    """`{package}-{VERSIONS[package]}.tgz` in data_dir(), else UsageError naming the command that fetches it."""
    found = data_dir() / f"{package}-{VERSIONS[package]}.tgz"
    if not found.is_file():
        raise UsageError(f"the emoji corpus needs the npm package {package}@{VERSIONS[package]} in {data_dir()}: "
                         f"(cd {data_dir()} && npm pack {package}@{VERSIONS[package]}), or run scripts/fetch_data.sh")
    return found


def parse_styles(spec: str) -> tuple[str, ...]:
    """`emoji` -> all styles; `emoji:google,twitter` -> those (UsageError for an unknown one)."""
    if spec.strip() == "emoji":
        return tuple(STYLES)
    names = tuple(dict.fromkeys(s.strip() for s in spec.split(":", 1)[1].split(",") if s.strip()))
    unknown = [n for n in names if n not in STYLES]
    if unknown or not names:
        raise UsageError(f"unknown emoji style {', '.join(unknown) or '(none)'} in {spec!r}; "
                         f"styles: {', '.join(STYLES)}")
    return names


def load_concepts(emojibase: Path) -> tuple[Concept, ...]:
    """The concepts of emojibase-data's en/data.json in its order, components and skin tones left out."""
    try:
        with tarfile.open(emojibase, "r:gz") as tar:
            handle = tar.extractfile("package/en/data.json")
            entries = json.load(handle) if handle else None
            groups_handle = tar.extractfile("package/meta/groups.json")
            groups = json.load(groups_handle)["groups"] if groups_handle else {}
    except (OSError, tarfile.TarError, KeyError, ValueError) as err:
        raise UsageError(f"cannot read {emojibase} ({err}); re-download it: npm pack {EMOJIBASE}") from err
    if not isinstance(entries, list):
        raise UsageError(f"{emojibase} has no en/data.json list; re-download it: npm pack {EMOJIBASE}")
    concepts = []
    for e in entries:
        if e.get("group") == COMPONENT_GROUP or "label" not in e or "hexcode" not in e:
            continue
        concepts.append(Concept(e["label"], tuple(e.get("tags") or ()), codepoints(e["hexcode"]),
                                str(groups.get(str(e.get("group")), "other"))))  # regional indicators: none
    return tuple(concepts)


def _render(data: bytes, svg: bool) -> np.ndarray:
    """PNG or SVG bytes -> uint8 [64, 64, 3], composited on white."""
    from PIL import Image

    if svg:
        import resvg_py

        data = bytes(resvg_py.svg_to_bytes(svg_string=data.decode("utf-8"), width=SIZE, height=SIZE))
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
        if rgba.size != (SIZE, SIZE):
            rgba = rgba.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), np.uint8)


def _read_style(path: Path, style: Style, wanted: dict[str, int]) -> dict[int, np.ndarray]:
    """concept index -> picture, for the members of `path` of `style` whose key is in `wanted`."""
    pattern = re.compile(style.member)
    out: dict[int, np.ndarray] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                match = pattern.fullmatch(member.name)
                if not match or not member.isfile():
                    continue
                key = match.group(1)
                key = codepoints(key) if style.key == "codepoints" else key.removesuffix("-default")
                index = wanted.get(key)
                handle = tar.extractfile(member) if index is not None else None
                if handle is not None and index not in out:
                    try:
                        out[index] = _render(handle.read(), member.name.endswith(".svg"))
                    except (OSError, ValueError) as err:  # one broken file costs one picture, not the corpus
                        logger.warning("%s: skipped %s (%s)", path.name, member.name, err)
    except (OSError, tarfile.TarError) as err:
        raise UsageError(f"cannot read {path} ({err}); re-download it: npm pack {style.package}") from err
    return out


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def _test_mask(concept: np.ndarray, style: np.ndarray, concepts: tuple[Concept, ...]) -> np.ndarray:
    """The held-out pictures (module docstring): fixed by the concepts' names, not the files' order. With
    fewer than three styles loaded, a concept needs only as many pictures as there are styles (with one
    style, a held-out concept is not seen in training at all)."""
    test = np.zeros(len(concept), bool)
    needed = min(MIN_STYLES_FOR_TEST, len(np.unique(style)))
    for c in np.unique(concept):
        rows = np.flatnonzero(concept == c)
        h = _hash(concepts[c].label)
        if len(rows) >= needed and h % 2 == 0:
            test[rows[np.argsort(style[rows], kind="stable")][(h >> 1) % len(rows)]] = True  # by style, not row order
    return test


def parse(styles: Iterable[str] = tuple(STYLES), limit: int | None = None) -> EmojiCorpus:
    """The corpus straight from the tarballs (no cache): all concepts, or the first `limit` of them."""
    styles = tuple(styles)
    if importlib.util.find_spec("resvg_py") is None and any(STYLES[s].member.endswith(r"\.svg") for s in styles):
        raise UsageError("the emoji corpus renders its SVG artwork with resvg: pip install 'zoo[images]' "
                         "(or pick PNG styles only: --config.data=emoji:google,twitter)")
    concepts = load_concepts(tarball(EMOJIBASE))[:limit]
    by_codepoints = {c.hexcode: i for i, c in enumerate(concepts)}
    by_slug = {slug(c.label): i for i, c in enumerate(concepts)}
    images, concept, style = [], [], []
    for s, name in enumerate(styles):
        spec = STYLES[name]
        found = _read_style(tarball(spec.package), spec, by_codepoints if spec.key == "codepoints" else by_slug)
        logger.info("emoji: %s: %d of %d concepts", name, len(found), len(concepts))
        for index in sorted(found):
            images.append(found[index])
            concept.append(index)
            style.append(s)
    if not images:
        raise UsageError(f"no emoji picture matched a concept in {', '.join(styles)}")
    concept_a, style_a = np.asarray(concept, np.int32), np.asarray(style, np.int32)
    return EmojiCorpus(concepts, styles, np.stack(images), concept_a, style_a,
                       _test_mask(concept_a, style_a, concepts))


def load(styles: Iterable[str] = tuple(STYLES)) -> EmojiCorpus:
    """`parse(styles)`, cached under data_dir()/cache by the tarballs (path, size, mtime) and this module."""
    styles = tuple(styles)
    sources = [tarball(EMOJIBASE), *dict.fromkeys(tarball(STYLES[s].package) for s in styles)]
    fp = hashlib.blake2b(Path(__file__).read_bytes() + ",".join(styles).encode(), digest_size=8)
    for src in sources:
        st = src.stat()
        fp.update(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    stem = f"emoji-{'+'.join(styles)}"
    path = data_dir() / "cache" / f"{stem}-{fp.hexdigest()}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                meta = json.loads(str(f["meta"]))
                concepts = tuple(Concept(c["label"], tuple(c["tags"]), c["hexcode"], c["group"])
                                 for c in meta["concepts"])
                corpus = EmojiCorpus(concepts, tuple(meta["styles"]), f["images"], f["concept"], f["style"], f["test"])
            logger.info("emoji: %s (cached %s)", corpus.counts(), path.name)
            return corpus
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            logger.warning("emoji: rebuilding the unreadable cache %s (%s)", path, err)
    corpus = parse(styles)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"styles": list(corpus.styles),
            "concepts": [{"label": c.label, "tags": list(c.tags), "hexcode": c.hexcode, "group": c.group}
                         for c in corpus.concepts]}
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", suffix=".npz", delete=False) as f:
        np.savez(f, images=corpus.images, concept=corpus.concept, style=corpus.style, test=corpus.test,
                 meta=np.asarray(json.dumps(meta)))
    os.replace(f.name, path)  # atomic: a concurrent reader sees the old file or the new one, never half
    for stale in path.parent.glob(f"{stem}-*.npz"):  # ~100 MB each: earlier parses of the same styles go
        if stale != path:
            stale.unlink(missing_ok=True)
    logger.info("emoji: %s (parsed; cached as %s)", corpus.counts(), path.name)
    return corpus
