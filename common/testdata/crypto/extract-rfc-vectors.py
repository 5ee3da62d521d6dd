#!/usr/bin/env python3
"""extract-rfc-vectors.py - copy the known-answer vectors we test against out of
the RFC texts (default /work/shared/rfcs) into rfc-kat.json, so the tests do not
depend on transcription by hand and the repository carries its own copy.

  RFC 3526 sections 3-7   MODP primes 14-18 (for the range checks on peer values)
  RFC 4231 section 4      HMAC-SHA-256/384/512 test cases 1-7
  RFC 5903 section 8      ECP 256/384/521 key exchanges
  RFC 7748 sections 5.2, 6.1, 6.2  X25519 / X448 function and key exchange vectors
  RFC 8439 section 2.8.2  AEAD_CHACHA20_POLY1305
  RFC 3602 section 4      AES-128-CBC cases 1-4

usage: ./extract-rfc-vectors.py [RFC_DIR]  (writes rfc-kat.json here)
"""
import json, re, sys

RFC_DIR = sys.argv[1] if len(sys.argv) > 1 else '/work/shared/rfcs'

def text(n):
    lines = open(f'{RFC_DIR}/rfc{n}.txt').read().split('\n')
    # drop page footers/headers and form feeds so values can span pages
    return [l for l in lines if not re.search(r'\[Page \d+\]$', l) and not l.startswith('RFC ')
            and '\f' not in l]

def section(lines, start, end):
    i = next(k for k, l in enumerate(lines) if l.startswith(start))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(end))
    return lines[i:j]

def modp():
    lines = text(3526)
    out = {}
    for group, title, nxt in ((14, '3.  2048-bit', '4.  '), (15, '4.  3072-bit', '5.  '),
                              (16, '5.  4096-bit', '6.  '), (17, '6.  6144-bit', '7.  '),
                              (18, '7.  8192-bit', '8.  ')):
        sec = section(lines, title, nxt)
        hexlines = [l.strip() for l in sec if re.fullmatch(r'\s+([0-9A-F]{8} ?)+', l)]
        out[str(group)] = ''.join(hexlines).replace(' ', '').lower()
    return out

def field_hex(lines, label, labels):
    """Hex after 'label =' up to the next label; parenthesised notes dropped."""
    out, on = [], False
    for l in lines:
        # (test case 3 of RFC 4231 prints "Key" without its "=")
        m = re.match(r'\s+(Key|Data|HMAC-SHA-\d+)\s+=?\s*(.*)$', l)
        if m and m.group(1) in labels:
            on = m.group(1) == label
            rest = m.group(2)
        elif on and l.strip():
            rest = l
        else:
            if on and not l.strip():
                on = False
            continue
        if on:
            rest = re.sub(r'\(.*?\)', '', rest)
            out += re.findall(r'\b[0-9a-f]+\b', rest)
    return ''.join(out)

def hmac():
    lines = text(4231)
    cases = []
    labels = {'Key', 'Data', 'HMAC-SHA-224', 'HMAC-SHA-256', 'HMAC-SHA-384', 'HMAC-SHA-512'}
    for n in range(1, 8):
        sec = section(lines, f'4.{n + 1}.  Test Case {n}', '4.' if n < 7 else '5.')[1:]
        case = {'case': n, 'key': field_hex(sec, 'Key', labels), 'data': field_hex(sec, 'Data', labels)}
        for h in ('256', '384', '512'):
            case['sha' + h] = field_hex(sec, 'HMAC-SHA-' + h, labels)
        case['truncated_to_bits'] = 128 if n == 5 else None
        cases.append(case)
    return cases

def label_blocks(lines, labels):
    """'label:' on its own line followed by lines of hex words."""
    out, cur = {}, None
    for l in lines:
        s = l.strip()
        if s.endswith(':') and s[:-1] in labels:
            cur = s[:-1]
            out[cur] = ''
        elif cur and re.fullmatch(r'([0-9A-Fa-f]+ ?)+', s):
            out[cur] += s.replace(' ', '').lower()
        elif s:
            cur = None
    return out

def ecp():
    lines = text(5903)
    out = {}
    for group, title, nxt in ((19, '8.1.  256-Bit', '8.2.'), (20, '8.2.  384-Bit', '8.3.'),
                              (21, '8.3.  521-Bit', '9.')):
        out[str(group)] = label_blocks(section(lines, title, nxt),
                                       {'i', 'gix', 'giy', 'r', 'grx', 'gry', 'girx', 'giry'})
    return out

def after(lines, marker, count=1):
    """Hex on the indented lines following each line equal to marker."""
    values = []
    for k, l in enumerate(lines):
        if l.strip() == marker:
            v, j = '', k + 1
            while j < len(lines) and re.fullmatch(r'\s+[0-9a-f]+', lines[j]):
                v += lines[j].strip(); j += 1
            values.append(v)
    return values

def x25519_x448():
    lines = text(7748)
    s52 = section(lines, '5.2.  Test Vectors', '6.  ')
    split = next(k for k, l in enumerate(s52) if l.strip() == 'X448:')
    iter_at = next(k for k, l in enumerate(s52) if 'second type of test vector' in l)
    out = {}
    for name, part in (('x25519', s52[:split]), ('x448', s52[split:iter_at])):
        scalars, us, outs = (after(part, m) for m in ('Input scalar:', 'Input u-coordinate:',
                                                       'Output u-coordinate:'))
        out[name + '_function'] = [{'scalar': a, 'u': b, 'output': c} for a, b, c in zip(scalars, us, outs)]
    iters = s52[iter_at:]
    initial = {n: after(iters, m)[0] for n, m in (('x25519', 'For X25519:'), ('x448', 'For X448:'))}
    x448_at = max(k for k, l in enumerate(iters) if l.strip() == 'X448:')
    for name, part in (('x25519', iters[:x448_at]), ('x448', iters[x448_at:])):
        out[name + '_iterated'] = {'initial': initial[name],
                                   'after_1': after(part, 'After one iteration:')[0],
                                   'after_1000': after(part, 'After 1,000 iterations:')[0]}
    for name, title, nxt in (('x25519', '6.1.  Curve25519', '6.2.'), ('x448', '6.2.  Curve448', '7.  ')):
        sec = section(lines, title, nxt)
        a = after(sec, "Alice's private key, a:")[0]
        b = after(sec, "Bob's private key, b:")[0]
        pa = after(sec, "Alice's public key, X25519(a, 9):" if name == 'x25519' else "Alice's public key, X448(a, 5):")[0]
        pb = after(sec, "Bob's public key, X25519(b, 9):" if name == 'x25519' else "Bob's public key, X448(b, 5):")[0]
        k = after(sec, 'Their shared secret, K:')[0]
        out[name + '_ecdh'] = {'a': a, 'public_a': pa, 'b': b, 'public_b': pb, 'shared': k}
    return out

def dump_after(lines, marker):
    """RFC 8439 hex dumps: '000  4c 61 ...  ascii' lines after the marker."""
    k = next(i for i, l in enumerate(lines) if l.strip() == marker)
    v = ''
    for l in lines[k + 1:]:
        m = re.match(r'\s+\d{3}  ((?:[0-9a-f]{2} ){1,16})', l)
        if not m:
            if v:
                break
            continue
        v += m.group(1).replace(' ', '')
    return v

def chacha():
    lines = text(8439)
    sec = section(lines, '2.8.2.  Example and Test Vector for AEAD_CHACHA20_POLY1305', '3.  ')
    tag_at = next(i for i, l in enumerate(sec) if l.strip() == 'Tag:')
    return {'plaintext': dump_after(sec, 'Plaintext:'), 'aad': dump_after(sec, 'AAD:'),
            'key': dump_after(sec, 'Key:'), 'iv': dump_after(sec, 'IV:'),
            'fixed': dump_after(sec, '32-bit fixed-common part:'),
            'ciphertext': dump_after(sec, 'Ciphertext:'),
            'tag': sec[tag_at + 1].strip().replace(':', '')}

def aes_cbc():
    lines = text(3602)
    sec = section(lines, '4.  Test Vectors', '5.  ')
    cases, cur, field = [], None, None
    for l in sec:
        if l.startswith('Case #'):
            n = int(l[6])
            if n > 4:
                break
            cur = {'case': n}; cases.append(cur); field = None
            continue
        if cur is None:
            continue
        m = re.match(r'(Key|IV|Plaintext|Ciphertext)\s*: (.*)$', l)
        if m:
            field, value = m.group(1).lower(), m.group(2).strip()
            if value.startswith('"'):
                cur[field] = value.strip('"').encode().hex(); field = None
            else:
                cur[field] = value[2:]
        elif field and re.fullmatch(r'\s+[0-9a-f]+', l):
            cur[field] += l.strip()
        else:
            field = None
    return cases

vectors = {'source': 'extracted from the RFC texts by extract-rfc-vectors.py',
           'rfc3526_modp_primes': modp(), 'rfc4231_hmac': hmac(), 'rfc5903_ecp': ecp(),
           'rfc7748': x25519_x448(), 'rfc8439_aead': chacha(), 'rfc3602_aes_cbc': aes_cbc()}
with open('rfc-kat.json', 'w') as f:
    json.dump(vectors, f, indent=1)
    f.write('\n')
