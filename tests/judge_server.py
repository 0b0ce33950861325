#!/usr/bin/python3
"""judge_server.py — a stand-in for the Gemini and OpenAI APIs for tests/test_judge_http.c,
tests/judging.sh and tests/dataset_gen.sh.

Python 3 standard library only. Listens on 127.0.0.1 (port 0 = an ephemeral port unless --port),
prints the port as the first line on stdout, and exits when its stdin closes or on SIGTERM.

Endpoints (the same as the real APIs):
  POST /v1beta/models/{model}:generateContent       Gemini judge (themes, comparisons)
  POST /v1beta/models/{model}:batchEmbedContents    Gemini embeddings
  POST /v1/chat/completions                         OpenAI judge
  POST /v1/embeddings                               OpenAI embeddings
  POST /_control   {"faults": PLAN, "key": KEY or null, "dim": N, "down_after": N or null}
                   replaces settings (not logged)

Every other request is recorded as one JSON line in the --log file
  {"t": unix time, "method", "path", "query", "headers": {lower-case name: value}, "body": raw text,
   "problems": [what is wrong with the request], "fault": the fault applied or null,
   "active": API requests in progress at the server when this one arrived, itself included}
and checked: the path, the API key (Gemini: x-goog-api-key; OpenAI: Authorization: Bearer) and
never in the URL, no credential in the other provider's header, Content-Type, the body's shape
and the response schema. A malformed request gets 400 with the problems in the error message.

Answers are canned but computed from the request: a theme "the outputs all mention item N"
(N = the batch's first prompt id, from its <item id="N"> tags) citing every id of the batch,
or null when the text holds "no-theme"; openers (a response schema with an "openers" array, from
`steerclear dataset`) are N distinct sentences of words drawn by a SHA-256 of the scene name,
the request number and the item (N, the scene and the roles read from the user message as
prompts/dataset_openers.txt words them), speakers alternating between the two roles; a comparison picks the response that holds the trait's
word more often (A on a tie); an embedding is a deterministic vector of --dim values from a
SHA-256 of the text (OpenAI's data[] comes back in reverse order, with indexes).

Fault plan (--faults or /_control): comma-separated KIND:COUNT[@MARKER]. A request takes the
first entry whose count is not used up, whose MARKER (when given) occurs in the request body,
and whose kind applies to the endpoint; each use counts down by one. Kinds:
  429        HTTP 429 with Retry-After: 1
  retryinfo  HTTP 429 without Retry-After, Gemini's RetryInfo "retryDelay": "1s" in the body
  500        HTTP 500
  slow       the answer comes after --slow-s seconds (longer than the client's timeout); when
             the client hangs up first, nothing is sent and the request stops counting as active
  truncated  Content-Length larger than what is sent, then the connection closes
  reset      the connection is reset without an answer
  badbody    HTTP 200 with an HTML body (not JSON)
  echokey    HTTP 401 whose message quotes the credential received (the client must redact it)
  notjson    the model's answer text is not JSON                        (judge endpoints)
  schema     the model's answer is JSON that violates the schema        (judge endpoints)
  extraid    the theme answer also cites prompt id 999999 (not in the batch)  (themes)
  badembed   the vector of the text holding MARKER (else the first) has dim-1 values  (embeddings)
  dupes      openers: every opener twice, one near-copy (a word changed), and a copy of the first
             opener already written (from the request's list)
  dirty      openers: besides the normal ones, an empty one, a short one, one too long, one with
             a line break, one with <|im_start|>, one with a "ROLE:" marker, one by a stranger, one with
             a control character
  few        openers: only 2, whatever was asked
Outage (--down-after N or /_control "down_after"): after N answers with HTTP 200, every API
request gets HTTP 503 until the setting is cleared (null).
"""

import argparse
import hashlib
import io
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GEMINI_PATH = re.compile(r"^/v1beta/models/([A-Za-z0-9._-]+):(generateContent|batchEmbedContents)$")
JUDGE_KINDS = {"notjson", "schema", "extraid"}
OPENER_KINDS = {"dupes", "dirty", "few"}
EMBED_KINDS = {"badembed"}
ANY_KINDS = {"429", "retryinfo", "500", "slow", "truncated", "reset", "badbody", "echokey"}


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.log_path = args.log
        self.key = None if args.no_auth else args.key
        self.dim = args.dim
        self.slow_s = args.slow_s
        self.faults = parse_plan(args.faults)
        self.active = 0
        self.down_after = args.down_after
        self.answered = 0


def parse_plan(plan):
    faults = []
    for entry in (plan or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        marker = None
        if "@" in entry:
            entry, marker = entry.split("@", 1)
        kind, _, count = entry.partition(":")
        if kind not in JUDGE_KINDS | EMBED_KINDS | ANY_KINDS | OPENER_KINDS:
            raise ValueError("unknown fault kind %r" % kind)
        faults.append({"kind": kind, "left": int(count or "1"), "marker": marker})
    return faults


def vector(text, dim):
    out, block = [], 0
    while len(out) < dim:
        digest = hashlib.sha256(("%d:" % block).encode() + text.encode("utf-8")).digest()
        out.extend(round((b - 127.5) / 127.5, 6) for b in digest)
        block += 1
    return out[:dim]


def check_schema_theme(schema, gemini):
    problems = []
    if not isinstance(schema, dict):
        return ["no response schema"]
    props = schema.get("properties")
    if not isinstance(props, dict) or set(props) != {"reasoning", "theme", "prompts"}:
        problems.append("schema properties must be reasoning, theme, prompts")
    elif gemini:
        if props["theme"].get("nullable") is not True:
            problems.append("schema: theme must be nullable")
        if props["prompts"].get("type") != "ARRAY" or props["prompts"].get("items", {}).get("type") != "INTEGER":
            problems.append("schema: prompts must be an ARRAY of INTEGER")
    else:
        if props["theme"].get("type") != ["string", "null"]:
            problems.append("schema: theme must be string or null")
        if schema.get("additionalProperties") is not False:
            problems.append("schema: strict mode needs additionalProperties false")
    if sorted(schema.get("required") or []) != sorted(props or []):
        problems.append("schema: every property must be required")
    return problems


def check_schema_compare(schema, gemini):
    if not isinstance(schema, dict):
        return ["no response schema"]
    props = schema.get("properties")
    problems = []
    if not isinstance(props, dict) or set(props) != {"reasoning", "more"}:
        problems.append("schema properties must be reasoning, more")
    elif props["more"].get("enum") != ["A", "B"]:
        problems.append("schema: more must be the enum A, B")
    if not gemini and schema.get("additionalProperties") is not False:
        problems.append("schema: strict mode needs additionalProperties false")
    return problems


def check_schema_openers(schema, gemini):
    if not isinstance(schema, dict):
        return ["no response schema"]
    problems = []
    props = schema.get("properties")
    if not isinstance(props, dict) or set(props) != {"openers"}:
        return ["schema properties must be openers"]
    arr = props["openers"]
    items = arr.get("items") if isinstance(arr, dict) else None
    if arr.get("type") != ("ARRAY" if gemini else "array") or not isinstance(items, dict):
        return ["schema: openers must be an array of objects"]
    iprops = items.get("properties") or {}
    if set(iprops) != {"speaker", "text"} or sorted(items.get("required") or []) != ["speaker", "text"]:
        problems.append("schema: an opener must have the required properties speaker, text")
    if not gemini and (schema.get("additionalProperties") is not False or items.get("additionalProperties") is not False):
        problems.append("schema: strict mode needs additionalProperties false")
    if schema.get("required") != ["openers"]:
        problems.append("schema: openers must be required")
    return problems


WORDS = ("apple anchor autumn bakery balance bargain bicycle blanket border bottle bridge bucket candle canvas carpet "
         "castle cellar chapter cherry circus cliff clock cloud coffee comet copper cotton cousin crystal curtain "
         "dance desert doctor dragon drawer engine envelope fabric falcon feather fence festival forest fountain "
         "garden garlic ginger glacier glove harbor hammer helmet honey horizon island jacket jungle kettle kitten "
         "ladder lantern lemon letter library lizard magnet marble meadow mirror monkey morning mountain museum "
         "napkin needle nephew orange orchard oven paddle palace parrot pencil pepper piano pillow planet pocket "
         "pottery puzzle rabbit radio ribbon river rocket saddle sailor salmon shadow shelter silver sister "
         "spider spoon stable station stone sugar summer tablet teapot thunder ticket tiger tomato tower tunnel "
         "umbrella valley velvet village violin wallet window winter wizard yellow zebra").split()


def opener_text(name, request, j, nwords=12):
    digest = hashlib.sha256(("%s|%s|%d" % (name, request, j)).encode()).digest()
    words = [WORDS[(digest[2 * k] * 256 + digest[2 * k + 1]) % len(WORDS)] for k in range(nwords)]
    return "Honestly, the " + " ".join(words) + " keeps me awake at night."


def openers_answer(text, fault):
    if fault == "notjson":
        return "Here are some openers: the first one is about the sea."
    if fault == "schema":
        return json.dumps({"openers": [{"speaker": "A"}, "not an object"]})
    name = (re.search(r"^Scene \(([^)]*)\)", text, re.M) or [None, "scene"])[1]
    roles = re.search(r'^The two people: "(.*)" and "(.*)"\.$', text, re.M)
    role_a, role_b = (roles.group(1), roles.group(2)) if roles else ("A", "B")
    n = int((re.search(r"^Write (\d+) new openers", text, re.M) or [None, "3"])[1])
    request = (re.search(r"\(request (\d+)\)", text) or [None, "1"])[1]
    if fault == "few":
        n = min(n, 2)
    items = [{"speaker": role_a if j % 2 == 0 else role_b, "text": opener_text(name, request, j)} for j in range(n)]
    if fault == "dupes":
        written = re.findall(r"^- (.*?): (.*)$", text, re.M)
        copies = [dict(it) for it in items]
        near = dict(items[0])
        near["text"] = near["text"].replace("keeps me awake at night", "keeps me up at night")
        items = [x for pair in zip(items, copies) for x in pair] + [near]
        if written:
            items.insert(1, {"speaker": written[0][0], "text": written[0][1].upper()})
    if fault == "dirty":
        items += [{"speaker": role_a, "text": "   "},
                  {"speaker": role_b, "text": "Too short."},
                  {"speaker": role_a, "text": "This one goes on and on. " * 30},
                  {"speaker": role_b, "text": "One line here,\nand another line there, which a turn must not have."},
                  {"speaker": role_a, "text": "I have to say something <|im_start|>assistant and then it breaks."},
                  {"speaker": role_a, "text": "I will tell you everything tonight. %s: No, you will not, not again." % role_b},
                  {"speaker": "Narrator", "text": "The rain keeps falling on the roof while nobody speaks at all."},
                  {"speaker": role_b, "text": "There is a bell \u0007 in this sentence, which no turn should carry."}]
    return json.dumps({"openers": items})


def theme_answer(text, fault):
    if fault == "notjson":
        return "I think the outputs are about cats."
    if fault == "schema":
        return json.dumps({"reasoning": "bad", "theme": 42, "prompts": ["one"]})
    ids = [int(x) for x in re.findall(r'<item id="(-?\d+)">', text)]
    if "no-theme" in text:
        ans = {"reasoning": "Nothing sets them apart.", "theme": None, "prompts": []}
    else:
        ans = {"reasoning": "Every modified output mentions the first item.",
               "theme": "the outputs all mention item %d" % (ids[0] if ids else -1), "prompts": ids}
    if fault == "extraid":
        ans["prompts"] = ans["prompts"] + [999999]
    return json.dumps(ans)


def compare_answer(text, fault):
    if fault == "notjson":
        return "A, clearly."
    if fault == "schema":
        return json.dumps({"reasoning": "bad", "more": "C"})
    trait = re.search(r"<trait>(.*?)</trait>", text, re.S)
    a = re.search(r"<response_a>\n(.*?)\n</response_a>", text, re.S)
    b = re.search(r"<response_b>\n(.*?)\n</response_b>", text, re.S)
    word = (trait.group(1) if trait else "").lower()
    ca = a.group(1).lower().count(word) if a and word else 0
    cb = b.group(1).lower().count(word) if b and word else 0
    return json.dumps({"reasoning": "counted %r: %d vs %d" % (word, ca, cb), "more": "A" if ca >= cb else "B"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "judge_server/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing
    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def reset(self):
        # SO_LINGER 0 + close: the peer gets a RST ("connection reset by peer"), not a FIN
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
        except OSError:
            pass
        self.wfile = io.BytesIO()  # what http.server still flushes goes nowhere

    def client_gone_within(self, seconds):
        """Wait up to `seconds`; True as soon as the client closes its connection (then the
        request no longer counts as active)."""
        st = self.server.state
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                continue
            try:
                data = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                data = b""
            if not data:
                with st.lock:
                    if self.counted:
                        st.active -= 1
                        self.counted = False
                return True
            time.sleep(min(left, 0.05))

    def do_GET(self):
        self.read_and_answer()

    def do_POST(self):
        self.read_and_answer()

    def read_and_answer(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        if path == "/_control":
            return self.control(raw)
        with st.lock:
            st.active += 1
            active = st.active
            self.counted = True
        try:
            self.handle_api(path, query, raw, active)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with st.lock:
                if self.counted:
                    st.active -= 1
                    self.counted = False

    def control(self, raw):
        st = self.server.state
        try:
            req = json.loads(raw or b"{}")
            with st.lock:
                if "faults" in req:
                    st.faults = parse_plan(req["faults"])
                if "key" in req:
                    st.key = req["key"]
                if "dim" in req:
                    st.dim = int(req["dim"])
                if "down_after" in req:
                    st.down_after = None if req["down_after"] is None else int(req["down_after"])
                    st.answered = 0
        except (ValueError, TypeError) as e:
            return self.send_json(400, {"error": {"code": 400, "message": "bad control request: %s" % e}})
        self.send_json(200, {"ok": True})

    def take_fault(self, body_text, endpoint_kinds):
        st = self.server.state
        with st.lock:
            for f in st.faults:
                if f["left"] <= 0 or f["kind"] not in endpoint_kinds:
                    continue
                if f["marker"] is not None and f["marker"] not in body_text:
                    continue
                f["left"] -= 1
                return f["kind"], f["marker"]
        return None, None

    # ---- the API
    def handle_api(self, path, query, raw, active):
        st = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        text = raw.decode("utf-8", "replace")
        problems = []
        key = st.key
        gm = GEMINI_PATH.match(path)
        provider = "gemini" if gm else "openai" if path in ("/v1/chat/completions", "/v1/embeddings") else None
        if provider is None:
            problems.append("unknown path %s" % path)
        if query:
            problems.append("the URL has a query string (%s); credentials belong in a header" % ("key=" if "key=" in query else "?"))
        if key and (key in self.path):
            problems.append("the API key appears in the URL")
        if self.command != "POST":
            problems.append("method %s (want POST)" % self.command)
        if not headers.get("content-type", "").startswith("application/json"):
            problems.append("Content-Type is %r, not application/json" % headers.get("content-type"))
        if provider == "gemini":
            if key is not None and headers.get("x-goog-api-key") != key:
                problems.append("x-goog-api-key is missing or wrong")
            if "authorization" in headers:
                problems.append("an Authorization header goes to Gemini")
        elif provider == "openai":
            if key is not None and headers.get("authorization") != "Bearer " + key:
                problems.append("Authorization: Bearer <key> is missing or wrong")
            if key is None and "authorization" in headers:
                problems.append("an Authorization header although the server expects none")
            if "x-goog-api-key" in headers:
                problems.append("an x-goog-api-key header goes to OpenAI")
        for name, value in headers.items():
            if key and key in value and name not in ("x-goog-api-key", "authorization"):
                problems.append("the API key appears in header %s" % name)
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
            problems.append("the body is not JSON")
        if not isinstance(body, dict):
            problems.append("the body is not a JSON object")
            body = {}

        kind = None  # "theme", "compare", "embed"
        model = None
        user_text = ""
        texts = []
        try:
            if provider == "gemini" and gm:
                model, method = gm.group(1), gm.group(2)
                if method == "generateContent":
                    si = body.get("systemInstruction", {}).get("parts", [{}])[0].get("text")
                    if not isinstance(si, str) or not si:
                        problems.append("systemInstruction.parts[0].text is missing")
                    contents = body.get("contents")
                    if not (isinstance(contents, list) and len(contents) == 1 and contents[0].get("role") == "user"):
                        problems.append("contents must be one user turn")
                    else:
                        user_text = contents[0].get("parts", [{}])[0].get("text") or ""
                        if not user_text:
                            problems.append("contents[0].parts[0].text is missing")
                    gc = body.get("generationConfig") or {}
                    if gc.get("responseMimeType") != "application/json":
                        problems.append("generationConfig.responseMimeType must be application/json")
                    schema = gc.get("responseSchema")
                    if isinstance(schema, dict) and "openers" in (schema.get("properties") or {}):
                        kind = "openers"
                        problems += check_schema_openers(schema, True)
                    elif isinstance(schema, dict) and "more" in (schema.get("properties") or {}):
                        kind = "compare"
                        problems += check_schema_compare(schema, True)
                    else:
                        kind = "theme"
                        problems += check_schema_theme(schema, True)
                else:
                    kind = "embed"
                    reqs = body.get("requests")
                    if not isinstance(reqs, list) or not reqs:
                        problems.append("requests must be a non-empty list")
                        reqs = []
                    for i, r in enumerate(reqs):
                        if r.get("model") != "models/" + model:
                            problems.append("requests[%d].model is %r, not models/%s" % (i, r.get("model"), model))
                        t = (r.get("content") or {}).get("parts", [{}])[0].get("text")
                        if not isinstance(t, str) or not t:
                            problems.append("requests[%d].content.parts[0].text is missing" % i)
                            t = ""
                        texts.append(t)
            elif provider == "openai":
                model = body.get("model")
                if not isinstance(model, str) or not model:
                    problems.append("model is missing")
                if path == "/v1/chat/completions":
                    msgs = body.get("messages")
                    if not (isinstance(msgs, list) and len(msgs) == 2 and msgs[0].get("role") == "system"
                            and msgs[1].get("role") == "user" and all(isinstance(m.get("content"), str) and m["content"] for m in msgs)):
                        problems.append("messages must be [system, user] with text content")
                    else:
                        user_text = msgs[1]["content"]
                    rf = body.get("response_format") or {}
                    js = rf.get("json_schema") or {}
                    if rf.get("type") != "json_schema" or not isinstance(js.get("name"), str) or js.get("strict") is not True:
                        problems.append("response_format must be a strict json_schema with a name")
                    schema = js.get("schema")
                    if isinstance(schema, dict) and "openers" in (schema.get("properties") or {}):
                        kind = "openers"
                        problems += check_schema_openers(schema, False)
                    elif isinstance(schema, dict) and "more" in (schema.get("properties") or {}):
                        kind = "compare"
                        problems += check_schema_compare(schema, False)
                    else:
                        kind = "theme"
                        problems += check_schema_theme(schema, False)
                else:
                    kind = "embed"
                    inp = body.get("input")
                    if not (isinstance(inp, list) and inp and all(isinstance(t, str) and t for t in inp)):
                        problems.append("input must be a non-empty list of non-empty strings")
                        inp = []
                    texts = inp
        except (AttributeError, IndexError, TypeError) as e:
            problems.append("malformed body: %s" % e)

        fault = marker = None
        if not problems:
            kinds = ANY_KINDS | (EMBED_KINDS if kind == "embed" else JUDGE_KINDS | (OPENER_KINDS if kind == "openers" else set()))
            fault, marker = self.take_fault(text, kinds)
        down = False
        with st.lock:
            if not problems and st.down_after is not None and st.answered >= st.down_after:
                down = True
                fault = "down"
        entry = {"t": time.time(), "method": self.command, "path": path, "query": query, "headers": headers,
                 "body": text, "problems": problems, "fault": fault, "active": active}
        with st.lock:
            with open(st.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

        if down:
            return self.send_json(503, {"error": {"code": 503, "message": "the service is down (test outage)", "status": "UNAVAILABLE"}})
        if problems:
            return self.send_json(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                  "message": "judge_server: " + "; ".join(problems)}})
        if fault == "429":
            return self.send_json(429, {"error": {"code": 429, "message": "rate limited (test)", "status": "RESOURCE_EXHAUSTED"}},
                                  {"Retry-After": "1"})
        if fault == "retryinfo":
            return self.send_json(429, {"error": {"code": 429, "message": "quota exceeded (test)", "status": "RESOURCE_EXHAUSTED",
                                                  "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]}})
        if fault == "500":
            return self.send_json(500, {"error": {"code": 500, "message": "internal error (test)", "status": "INTERNAL"}})
        if fault == "echokey":
            got = headers.get("x-goog-api-key") or headers.get("authorization") or ""
            return self.send_json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                                  "message": "API key not valid: %s (test)" % got}})
        if fault == "reset":
            return self.reset()
        if fault == "badbody":
            page = b"<html><body>502 Bad Gateway (test)</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if fault == "slow" and self.client_gone_within(st.slow_s):
            self.close_connection = True
            return

        if kind == "embed":
            dim = st.dim
            vecs = [vector(t, dim) for t in texts]
            if fault == "badembed":
                j = next((i for i, t in enumerate(texts) if marker and marker in t), 0)
                vecs[j] = vecs[j][:dim - 1]
            if provider == "gemini":
                answer = {"embeddings": [{"values": v} for v in vecs]}
            else:
                data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]
                answer = {"object": "list", "data": list(reversed(data)), "model": model,
                          "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        else:
            if kind == "openers":
                reply = openers_answer(user_text, fault)
            else:
                reply = compare_answer(user_text, fault) if kind == "compare" else theme_answer(user_text, fault)
            if provider == "gemini":
                answer = {"candidates": [{"content": {"parts": [{"text": reply}], "role": "model"}, "finishReason": "STOP", "index": 0}],
                          "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
                          "modelVersion": model}
            else:
                answer = {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        if fault == "truncated":
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        with st.lock:
            st.answered += 1
        self.send_json(200, answer)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", required=True, help="JSON-lines file every API request is appended to")
    ap.add_argument("--key", default="sk-test-SECRET-42", help="the API key the requests must carry")
    ap.add_argument("--no-auth", action="store_true", help="expect no API key at all")
    ap.add_argument("--faults", default="", help="fault plan: KIND:COUNT[@MARKER],...")
    ap.add_argument("--dim", type=int, default=16, help="embedding dimension")
    ap.add_argument("--slow-s", type=float, default=3.0, help="delay of a 'slow' answer")
    ap.add_argument("--down-after", type=int, default=None, help="HTTP 503 for every API request after this many answers")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
