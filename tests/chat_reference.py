#!/usr/bin/python3
"""chat_reference.py — render conversations with a model's REAL chat template through jinja2,
compiled and called the way Hugging Face transformers does (apply_chat_template ->
render_jinja_template -> _compile_jinja_template):

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[jinja2.ext.loopcontrols])
  filters["tojson"] = json.dumps(..., ensure_ascii=False); globals raise_exception, strftime_now
  template.render(messages=..., tools=None, documents=None, add_generation_prompt=True,
                  **special_tokens_map, **extra_kwargs)

(transformers also adds its AssistantTracker extension, which only matters for the
{% generation %} tag, absent from Qwen's templates.)

Usage: chat_reference.py REQUEST.json OUT.json
REQUEST: {"cases": [{"config": "path/tokenizer_config.json", "messages": [{"role", "content"}],
                     "kwargs": {...}}]}
OUT:     {"rendered": ["...", ...]}   (a case that raises gets {"error": "..."} in its place)
Exit 2 when jinja2 is missing (the caller skips).
"""
import json
import sys
from datetime import datetime

try:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("chat_reference.py: python3-jinja2 is not installed", file=sys.stderr)
    sys.exit(2)


def compile_template(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                "additional_special_tokens")


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    if isinstance(v, list):
        return [token_text(x) for x in v]
    return v


def load(config_path, cache):
    if config_path not in cache:
        with open(config_path, encoding="utf-8") as f:
            cfg = json.load(f)
        tmpl = cfg["chat_template"]
        if isinstance(tmpl, list):
            tmpl = next(t["template"] for t in tmpl if t.get("name") == "default")
        special = {k: token_text(cfg[k]) for k in SPECIAL_KEYS if cfg.get(k) is not None}
        cache[config_path] = (compile_template(tmpl), special)
    return cache[config_path]


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        req = json.load(f)
    cache = {}
    out = []
    for case in req["cases"]:
        template, special = load(case["config"], cache)
        try:
            out.append(template.render(messages=case["messages"], tools=None, documents=None,
                                       add_generation_prompt=True, **special, **case.get("kwargs", {})))
        except Exception as e:  # noqa: BLE001 - reported per case
            out.append({"error": f"{type(e).__name__}: {e}"})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump({"rendered": out}, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
