#!/usr/bin/python3
"""Test oracle: encodes whole files with SentencePiece's Python binding.

Usage: spm_encode_whole.py MODEL FILE [FILE...]
Prints one line per FILE: the ids of sp.encode(<the file's bytes>) separated by spaces. The whole
file is one string, so newlines are ordinary characters (byte-fallback <0x0A> pieces) and the
dummy prefix is added once, at the start. Run it with the system Python (/usr/bin/python3),
where Debian's python3-sentencepiece lives.
"""
import sys

import sentencepiece as spm


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
    out = sys.stdout
    for path in sys.argv[2:]:
        with open(path, 'rb') as f:
            data = f.read()
        # bytes in: malformed UTF-8 reaches SentencePiece unchanged.
        out.write(' '.join(map(str, sp.encode(data))) + '\n')


if __name__ == '__main__':
    main()
