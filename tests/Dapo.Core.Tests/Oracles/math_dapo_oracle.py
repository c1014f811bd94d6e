#!/usr/bin/python3
"""An oracle for verl's DAPO math reward, written from its rules (not from its code), in Python so that Python's
own string semantics decide: what counts as whitespace for the regex's \\s and for str.strip(), which characters
re.IGNORECASE equates with the letters of "Answer", what str.isdigit() accepts, and that strings are sequences of
code points (so slicing and "one character" never split a character outside the Basic Multilingual Plane).

The rules (verl ``verl/utils/reward_score/math_dapo.py``, ``compute_score`` in its default Minerva mode):
  1. keep the last 300 characters of the response;
  2. the answer is the text captured by the last match of ``(?i)Answer\\s*:\\s*([^\\n]+)`` there, or the
     placeholder ``[INVALID]`` when nothing matches;
  3. prediction and ground truth are both normalised (see ``normalize``) and compared as strings:
     score +1.0 when equal, -1.0 otherwise.

Protocol. Default mode: reads JSON lines ``{"id", "response", "ground_truth"}`` on stdin and writes one JSON line
per input, ``{"id", "found", "answer", "prediction", "ground_truth", "score"}`` (``answer`` is null when nothing
matched; ``prediction`` is then the normalised placeholder, as in verl). ``--unicode`` mode: reads one JSON line
``{"codepoints": [...]}`` and writes one JSON object describing Python's character classes (see ``unicode_facts``).
All output is ASCII JSON (``ensure_ascii``), so control and astral characters survive any pipe encoding.
"""

import json
import re
import sys
import unicodedata

TAIL_CHARACTERS = 300
PLACEHOLDER = "[INVALID]"
MARKER = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")

# Step 2 of the normalisation: literal rewrites, in this order (the rule's data).
REWRITES = (
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
)

# Step 3: literal deletions, in this order (the rule's data).
DELETIONS = (
    "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue", "points",
    "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
    "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
    "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)


def last_answer(response):
    """Rule 1 and 2: the captured text of the last marker match in the tail, or None."""
    tail = response[-TAIL_CHARACTERS:]
    answers = MARKER.findall(tail)
    return answers[-1] if answers else None


def first_math_span_per_line(text):
    """A line holding two or more '$' becomes '$' + (what lies between its first two '$') + '$'."""

    def one_line(line):
        first = line.find("$")
        second = line.find("$", first + 1) if first >= 0 else -1
        return line if second < 0 else "$" + line[first + 1:second] + "$"

    return "\n".join(one_line(line) for line in text.split("\n"))


def rewrite_each(text, needle, rewrite):
    """Scans `text` left to right for `needle`. At each occurrence, rewrite(start) returns (end, replacement) to put
    replacement in place of text[start:end] and resume scanning at end (a replacement is not scanned again), or
    None to leave the occurrence and resume one character further."""
    pieces = []
    position = 0
    while True:
        start = text.find(needle, position)
        if start < 0:
            break
        rewritten = rewrite(start)
        if rewritten is None:
            pieces.append(text[position:start + 1])
            position = start + 1
        else:
            end, replacement = rewritten
            pieces.append(text[position:start])
            pieces.append(replacement)
            position = end
    pieces.append(text[position:])
    return "".join(pieces)


def unwrap_shortest(text, opener):
    """Every opener{...} whose closing brace is the first '}' after it on the same line becomes its content."""

    def content(start):
        first = start + len(opener)
        close = text.find("}", first)
        line_end = text.find("\n", first)
        if close < 0 or 0 <= line_end < close:
            return None
        return close + 1, text[first:close]

    return rewrite_each(text, opener, content)


def unwrap_boxed_per_line(text):
    """On each line, the first \\boxed{ and the last '}' after it on that line are removed."""
    opener = "\\boxed{"

    def one_line(line):
        start = line.find(opener)
        if start < 0:
            return line
        close = line.rfind("}")
        if close < start + len(opener):
            return line
        return line[:start] + line[start + len(opener):close] + line[close + 1:]

    return "\n".join(one_line(line) for line in text.split("\n"))


def expand_shorthand(text, command, arguments):
    """command followed by `arguments` single characters, the first not '{' and the second (for \\frac) not a
    newline, gets each of them braced: frac ab -> frac{a}{b}, sqrt a -> sqrt{a}. Characters are code points."""

    def braced(start):
        first = start + len(command)
        chars = text[first:first + arguments]
        if len(chars) < arguments or chars[0] == "{" or "\n" in chars[1:]:
            return None
        return first + arguments, command + "".join("{" + c + "}" for c in chars)

    return rewrite_each(text, command, braced)


def normalize(answer):
    text = answer.rpartition("=")[2]
    for before, after in REWRITES:
        text = text.replace(before, after)
    for deleted in DELETIONS:
        text = text.replace(deleted, "")
    text = first_math_span_per_line(text)
    for opener in ("\\text{", "\\textbf{", "\\overline{"):
        text = unwrap_shortest(text, opener)
    text = unwrap_boxed_per_line(text)
    text = expand_shorthand(text, "frac", 2)
    text = expand_shorthand(text, "sqrt", 1)
    text = text.replace("$", "")
    if text.replace(",", "").isdigit():
        text = text.replace(",", "")
    return text.strip()


def score(case):
    answer = last_answer(case["response"])
    prediction = normalize(PLACEHOLDER if answer is None else answer)
    truth = normalize(case["ground_truth"])
    return {
        "id": case["id"],
        "found": answer is not None,
        "answer": answer,
        "prediction": prediction,
        "ground_truth": truth,
        "score": 1.0 if prediction == truth else -1.0,
    }


def unicode_facts(codepoints):
    """Python's view of every code point: str.isspace(), str.isdigit(), the characters re.IGNORECASE matches for
    each letter of "Answer", and the general category of the requested code points ('Cn': unassigned in this
    Python's Unicode version)."""
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    return {
        "unidata_version": unicodedata.unidata_version,
        "python": sys.version.split()[0],
        "isspace": [ord(c) for c in everything if c.isspace()],
        "isdigit": [ord(c) for c in everything if c.isdigit()],
        "ignorecase": {letter: [ord(c) for c in re.findall("(?i)" + letter, everything)] for letter in "Answer"},
        "categories": {str(c): unicodedata.category(chr(c)) for c in codepoints},
    }


def main():
    if sys.argv[1:] == ["--unicode"]:
        request = json.loads(sys.stdin.readline())
        sys.stdout.write(json.dumps(unicode_facts(request["codepoints"])) + "\n")
        return
    if sys.argv[1:]:
        sys.exit("usage: math_dapo_oracle.py [--unicode] < requests.jsonl")
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(score(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
