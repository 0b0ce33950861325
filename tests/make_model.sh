#!/usr/bin/env bash
# make_model.sh — `steerclear make-model` end to end: the tiny preset's files and config values
# (checked with Python's json and an independent safetensors header parser), determinism,
# overrides, sharding, --arch qwen3 (with --head-dim != hidden/heads, --attention-bias), and the
# error messages of bad invocations.
set -u
BIN=${SC_BIN:?SC_BIN not set}
TOK=${SC_TOKENIZER:-}
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "skip: $BIN not built"; exit 77; }
[ -f "$TOK" ] || { echo "skip: tokenizer $TOK not found"; exit 77; }
[ -x "$PY" ] || { echo "skip: $PY not found"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAIL: $1"; fail=1; fi; }

# --- the tiny preset
"$BIN" make-model --preset tiny --tokenizer "$TOK" --seed 1 --out "$T/tiny" >"$T/out" 2>"$T/err" || { echo "make-model failed:"; cat "$T/err"; exit 1; }
check '[ -f "$T/tiny/config.json" ] && [ -f "$T/tiny/model.safetensors" ] && [ -f "$T/tiny/tokenizer.json" ]'
check 'cmp -s "$TOK" "$T/tiny/tokenizer.json"'
check '[ ! -e "$T/tiny/tokenizer_config.json" ]'   # none beside $TOK: chats render as plain ChatML
# the chat template travels with the tokenizer: tokenizer_config.json beside it is copied, and
# a later make-model from a bare tokenizer.json into the same directory removes it again
mkdir -p "$T/tokdir" && cp "$TOK" "$T/tokdir/tokenizer.json"
printf '{"chat_template": null, "eos_token": "<|im_end|>"}' >"$T/tokdir/tokenizer_config.json"
"$BIN" make-model --preset tiny --tokenizer "$T/tokdir/tokenizer.json" --seed 1 --out "$T/tpl" >/dev/null 2>&1
check 'cmp -s "$T/tokdir/tokenizer_config.json" "$T/tpl/tokenizer_config.json"'
"$BIN" make-model --preset tiny --tokenizer "$TOK" --seed 1 --out "$T/tpl" >/dev/null 2>&1
check '[ ! -e "$T/tpl/tokenizer_config.json" ]'
check '[ ! -e "$T/tiny/model.safetensors.index.json" ]'
check '! ls "$T/tiny" | grep -q tmp'
cat >"$T/check.py" <<'EOF'
import json, struct, sys
d, want = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(d + '/config.json'))
for k, v in want.items():
    if c.get(k) != v:
        sys.exit(f'config.json: {k} = {c.get(k)!r}, want {v!r}')
q3 = c['model_type'] == 'qwen3'
assert c['architectures'] == ['Qwen3ForCausalLM' if q3 else 'Qwen2ForCausalLM'] and c['hidden_act'] == 'silu' and c['use_sliding_window'] is False
if q3:   # the Qwen3 layout: head_dim always given, attention_bias, no sliding window size
    assert 'head_dim' in c and isinstance(c['attention_bias'], bool) and c['sliding_window'] is None, c
bias = not q3 or c['attention_bias']
files = [d + '/model.safetensors']
try:
    idx = json.load(open(d + '/model.safetensors.index.json'))
    files = sorted({d + '/' + f for f in idx['weight_map'].values()})
except FileNotFoundError:
    idx = None
tensors = {}
for f in files:
    raw = open(f, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    h.pop('__metadata__', None)
    for name, e in h.items():
        assert name not in tensors, name
        b, en = e['data_offsets']
        assert 8 + n + en <= len(raw)
        tensors[name] = (e['dtype'], e['shape'], f, raw[8 + n + b:8 + n + en])
L, C, I, V = c['num_hidden_layers'], c['hidden_size'], c['intermediate_size'], c['vocab_size']
hd = c.get('head_dim', C // c['num_attention_heads'])
Q, K = c['num_attention_heads'] * hd, c['num_key_value_heads'] * hd
expect = {'model.embed_tokens.weight': [V, C], 'model.norm.weight': [C]}
if not c['tie_word_embeddings']:
    expect['lm_head.weight'] = [V, C]
for l in range(L):
    p = f'model.layers.{l}.'
    expect.update({p + 'input_layernorm.weight': [C], p + 'post_attention_layernorm.weight': [C],
                   p + 'self_attn.q_proj.weight': [Q, C], p + 'self_attn.k_proj.weight': [K, C],
                   p + 'self_attn.v_proj.weight': [K, C],
                   p + 'self_attn.o_proj.weight': [C, Q], p + 'mlp.gate_proj.weight': [I, C],
                   p + 'mlp.up_proj.weight': [I, C], p + 'mlp.down_proj.weight': [C, I]})
    if bias:
        expect.update({p + 'self_attn.q_proj.bias': [Q], p + 'self_attn.k_proj.bias': [K], p + 'self_attn.v_proj.bias': [K]})
    if q3:
        expect.update({p + 'self_attn.q_norm.weight': [hd], p + 'self_attn.k_norm.weight': [hd]})
assert set(tensors) == set(expect), sorted(set(tensors) ^ set(expect))
dt = {'bfloat16': 'BF16', 'float32': 'F32', 'float16': 'F16'}[c['torch_dtype']]
for name, shape in expect.items():
    assert tensors[name][0] == dt and tensors[name][1] == shape, (name, tensors[name][:2], shape)
if idx:
    for name, f in idx['weight_map'].items():
        assert tensors[name][2] == d + '/' + f, name
    assert idx['metadata']['total_size'] == sum(len(t[3]) for t in tensors.values())
try:
    import torch
    tdt = {'BF16': torch.bfloat16, 'F32': torch.float32, 'F16': torch.float16}[dt]
    x = lambda n: torch.frombuffer(bytearray(tensors[n][3]), dtype=tdt).float()
    e = x('model.embed_tokens.weight')
    assert abs(e.std().item() - C ** -0.5) < 0.05 * C ** -0.5, e.std().item()
    nrm = x('model.norm.weight')
    assert abs(nrm.mean().item() - 1) < 0.05 and nrm.std().item() > 0.01
    if bias:
        b = x('model.layers.0.self_attn.k_proj.bias')
        assert b.abs().max().item() > 0
    if q3:   # random around 1
        qn = x('model.layers.0.self_attn.q_norm.weight')
        assert abs(qn.mean().item() - 1) < 0.1 and qn.std().item() > 0.01, qn
except ImportError:
    pass
print(f'{len(tensors)} tensors in {len(files)} file(s) ok')
EOF
check '$PY "$T/check.py" "$T/tiny" "{\"num_hidden_layers\":3,\"hidden_size\":64,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":176,\"vocab_size\":151936,\"tie_word_embeddings\":true,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,\"eos_token_id\":151643,\"bos_token_id\":151643,\"torch_dtype\":\"bfloat16\",\"model_type\":\"qwen2\"}"'

# --- determinism: same seed, same bytes; another seed, other bytes
"$BIN" make-model --preset tiny --tokenizer "$TOK" --seed 1 --out "$T/tiny2" >/dev/null 2>&1
check 'cmp -s "$T/tiny/model.safetensors" "$T/tiny2/model.safetensors"'
"$BIN" make-model --preset tiny --tokenizer "$TOK" --seed 2 --out "$T/tiny3" >/dev/null 2>&1
check '! cmp -s "$T/tiny/model.safetensors" "$T/tiny3/model.safetensors"'

# --- overrides, f32, untied, sharded
"$BIN" make-model --preset tiny --tokenizer "$TOK" --out "$T/ovr" --layers 2 --hidden 32 --heads 2 --kv-heads 1 \
    --intermediate 48 --vocab 151680 --untie-embeddings --rope-theta 500000 --dtype f32 --shard-mb 10 >/dev/null 2>"$T/err" \
    || { echo "FAIL: overrides:"; cat "$T/err"; fail=1; }
check '[ -f "$T/ovr/model.safetensors.index.json" ] && [ ! -e "$T/ovr/model.safetensors" ] && [ -f "$T/ovr/model-00003-of-00003.safetensors" ]'
check '$PY "$T/check.py" "$T/ovr" "{\"num_hidden_layers\":2,\"hidden_size\":32,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":48,\"vocab_size\":151680,\"tie_word_embeddings\":false,\"rope_theta\":500000.0,\"torch_dtype\":\"float32\"}"'
"$BIN" make-model --preset tiny --tokenizer "$TOK" --out "$T/hd" --head-dim 8 --dtype f16 >/dev/null 2>&1
check '$PY "$T/check.py" "$T/hd" "{\"head_dim\":8,\"hidden_size\":64,\"torch_dtype\":\"float16\"}"'

# --- qwen3: per-head q/k norms, no biases, head_dim 24 != hidden / heads = 16
"$BIN" make-model --preset tiny --arch qwen3 --head-dim 24 --tokenizer "$TOK" --out "$T/q3" --dtype f32 >/dev/null 2>"$T/err" \
    || { echo "FAIL: --arch qwen3:"; cat "$T/err"; fail=1; }
check '$PY "$T/check.py" "$T/q3" "{\"model_type\":\"qwen3\",\"head_dim\":24,\"hidden_size\":64,\"num_attention_heads\":4,\"attention_bias\":false,\"tie_word_embeddings\":true}"'
"$BIN" make-model --preset tiny --arch qwen3 --attention-bias --untie-embeddings --tokenizer "$TOK" --out "$T/q3b" >/dev/null 2>"$T/err" \
    || { echo "FAIL: --arch qwen3 --attention-bias:"; cat "$T/err"; fail=1; }
check '$PY "$T/check.py" "$T/q3b" "{\"model_type\":\"qwen3\",\"head_dim\":16,\"attention_bias\":true,\"tie_word_embeddings\":false}"'
"$BIN" make-model --preset tiny --arch qwen2 --tokenizer "$TOK" --seed 1 --out "$T/q2" >/dev/null 2>&1
check 'cmp -s "$T/tiny/model.safetensors" "$T/q2/model.safetensors" && cmp -s "$T/tiny/config.json" "$T/q2/config.json"'

# --- errors: non-zero exit and a message that names the problem
expect_fail() {   # expect_fail "message substring" args...
    local want=$1; shift
    if "$BIN" make-model "$@" >"$T/out" 2>"$T/err"; then echo "FAIL: make-model $* succeeded"; fail=1; return; fi
    grep -qF -- "$want" "$T/err" || { echo "FAIL: make-model $*: stderr lacks '$want':"; cat "$T/err"; fail=1; }
}
expect_fail "unknown preset 'qwen9-huge'" --preset qwen9-huge --tokenizer "$TOK" --out "$T/x"
expect_fail "tiny, qwen2.5-0.5b-shape, qwen2.5-14b-shape" --preset qwen9-huge --tokenizer "$TOK" --out "$T/x"
minv=$($PY -c "import json; t = json.load(open('$TOK')); print(1 + max(max(t['model']['vocab'].values()), max(a['id'] for a in t['added_tokens'])))")
expect_fail "use a vocab of at least $minv" --preset tiny --tokenizer "$TOK" --out "$T/x" --vocab 1000
expect_fail "--out DIR is required" --preset tiny --tokenizer "$TOK"
expect_fail "--tokenizer PATH" --preset tiny --out "$T/x"
expect_fail "--preset is required" --tokenizer "$TOK" --out "$T/x"
expect_fail "--dtype 'f64' is not one of bf16, f16, f32" --preset tiny --tokenizer "$TOK" --out "$T/x" --dtype f64
expect_fail "--layers 'abc' is not a positive integer" --preset tiny --tokenizer "$TOK" --out "$T/x" --layers abc
expect_fail "heads 4 is not divisible by kv heads 3" --preset tiny --tokenizer "$TOK" --out "$T/x" --kv-heads 3
expect_fail "--arch 'llama' is not one of qwen2, qwen3" --preset tiny --tokenizer "$TOK" --out "$T/x" --arch llama
expect_fail "--attention-bias is for --arch qwen3" --preset tiny --tokenizer "$TOK" --out "$T/x" --attention-bias
expect_fail "unknown or incomplete option '--bogus'" --preset tiny --tokenizer "$TOK" --out "$T/x" --bogus
expect_fail "/nonexistent/tokenizer.json" --preset tiny --tokenizer /nonexistent/tokenizer.json --out "$T/x"
check '[ ! -e "$T/x" ]'
grep -q "qwen2.5-14b-shape" <<<"$("$BIN" make-model --help)" || { echo "FAIL: --help"; fail=1; }
grep -q -- "--arch A  *qwen2 | qwen3" <<<"$("$BIN" make-model --help)" || { echo "FAIL: --help lacks --arch"; fail=1; }

[ $fail = 0 ] && echo "make_model.sh: ok"
exit $fail
