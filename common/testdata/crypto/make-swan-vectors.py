#!/usr/bin/env python3
"""make-swan-vectors.py - turn the strongSwan 5.9.8 interop capture in ../interop
(charon-a.log written with ike=4/chd=4, messages.hex) into one JSON vector file
per IKE SA: swan-<connection>-<n>.json.

Each file holds the INPUTS of every derivation (g^ir, Ni, Nr, SPIs, the PSK, the
raw messages) and the OUTPUTS strongSwan logged (SKEYSEED, SK_*, Child SA keys,
AUTH). The inputs are taken from the wire where they appear there (nonces, SPIs,
KE data); the nonces of the CBC IKE SA rekey are only on the wire encrypted and
are decrypted here with the `openssl enc` command line tool, not with our code.
The Rust tests (common/tests/crypto_interop.rs) recompute every output.

usage: cd common/testdata/crypto && ./make-swan-vectors.py
"""
import json, re, subprocess

LOG = '../interop/charon-a.log'
MESSAGES = '../interop/messages.hex'
PSK = b'interop-lab-psk-0123456789'  # /work/shared/interop/README.md

HDR = re.compile(r'^\S+ +\d+\[(?:IKE|CHD)\d\] <([^>]+)> (.+?) => (\d+) bytes @ 0x[0-9a-f]+$')
HEX = re.compile(r'^\S+ +\d+\[(?:IKE|CHD)\d\] <([^>]+)> +\d+: ((?:[0-9A-F]{2} ){1,16})')
PROP = re.compile(r'^\S+ +\d+\[CFG1\] <([^>]+)> selected proposal: (\S+)$')

def log_items():
    """[(sa, label, hex)] in log order; proposals as label 'proposal'."""
    items, cur = [], None
    for line in open(LOG, errors='replace'):
        line = line.rstrip('\n')
        if cur:
            m = HEX.match(line)
            if m and m.group(1) == cur[0]:
                cur[3].extend(m.group(2).split()[:cur[2] - len(cur[3])])
                if len(cur[3]) >= cur[2]:
                    items.append((cur[0], cur[1], ''.join(cur[3]).lower()))
                    cur = None
                continue
            cur = None
        m = HDR.match(line)
        if m:
            cur = [m.group(1), m.group(2), int(m.group(3)), []]
            continue
        m = PROP.match(line)
        if m:
            items.append((m.group(1), 'proposal', m.group(2)))
    return items

def messages():
    out, comment = [], None
    for line in open(MESSAGES):
        line = line.strip()
        if line.startswith('# ') and line[2:3].isdigit():
            comment = line[2:]
        elif line and not line.startswith('#'):
            out.append((comment, line))
    return out

def payloads(first_type, data):
    """[(type, body)] walking generic payload headers."""
    out, kind, pos = [], first_type, 0
    while kind != 0 and pos + 4 <= len(data):
        nxt, length = data[pos], int.from_bytes(data[pos + 2:pos + 4], 'big')
        out.append((kind, data[pos + 4:pos + length]))
        kind, pos = nxt, pos + length
    return out

def message_payloads(msg):
    return payloads(msg[16], msg[28:])

def find(pls, kind):
    return [body for k, body in pls if k == kind]

def cbc_open(msg, sk_e, icv_len=16):
    """Inner payloads of an AES-256-CBC SK message, decrypted by openssl(1)."""
    sk = find(message_payloads(msg), 46)[0]
    iv, ct = sk[:16], sk[16:len(sk) - icv_len]
    plain = subprocess.run(['openssl', 'enc', '-d', '-aes-256-cbc', '-nopad', '-K', sk_e,
                            '-iv', iv.hex()], input=ct, capture_output=True, check=True).stdout
    plain = plain[:len(plain) - 1 - plain[-1]]
    # the SK payload's Next Payload field names the first inner payload
    pos, kind = 28, msg[16]
    while kind != 46:
        kind, pos = msg[pos], pos + int.from_bytes(msg[pos + 2:pos + 4], 'big')
    return payloads(msg[pos], plain)

PROPOSAL_IDS = {
    'AES_CBC_256': {'encr': 12, 'encr_key_bits': 256},
    'AES_GCM_16_128': {'encr': 20, 'encr_key_bits': 128},
    'HMAC_SHA2_256_128': {'integ': 12},
    'PRF_HMAC_SHA2_256': {'prf': 5},
    'MODP_2048': {'ke': 14},
    'CURVE_25519': {'ke': 31},
}

def proposal(text):
    ids = {}
    for name in text.split(':', 1)[1].split('/'):
        ids.update(PROPOSAL_IDS.get(name, {}))
    return ids

KEY_LABELS = {'SKEYSEED': 'skeyseed', 'Sk_d secret': 'sk_d', 'Sk_ai secret': 'sk_ai',
              'Sk_ar secret': 'sk_ar', 'Sk_ei secret': 'sk_ei', 'Sk_er secret': 'sk_er',
              'Sk_pi secret': 'sk_pi', 'Sk_pr secret': 'sk_pr'}
CHILD_LABELS = {'encryption initiator key': 'encr_i', 'integrity initiator key': 'integ_i',
                'encryption responder key': 'encr_r', 'integrity responder key': 'integ_r'}

def main():
    items = log_items()
    msgs = messages()
    sas = []
    for sa, label, value in items:
        if sa not in sas:
            sas.append(sa)
    for sa in sas:
        name, number = sa.split('|')
        seq = [(l, v) for s, l, v in items if s == sa]
        # phases: ike (initial), then CHILD and IKE rekeys in log order
        phases, cur = [], None
        for label, value in seq:
            if label == 'proposal':
                cur = {'proposal': value, 'values': []}
                phases.append(cur)
            elif cur is not None:
                cur['values'].append((label, value))
        ike, child = phases[0], phases[1]
        spi_i = next(c for c, _ in msgs if f'({name}|{number})' in c or f'#{number} ' in c).split('spi_i=')[1][:16]
        own = [(c, bytes.fromhex(h)) for c, h in msgs if f'spi_i={spi_i}' in c]
        init_req = next(m for c, m in own if 'IKE_SA_INIT request' in c)
        init_resp = next(m for c, m in own if 'IKE_SA_INIT response' in c)
        auth_req = next(m for c, m in own if 'IKE_AUTH request' in c)
        auth_resp = next(m for c, m in own if 'IKE_AUTH response' in c)
        spi_r = init_resp[8:16].hex()
        req_pl, resp_pl = message_payloads(init_req), message_payloads(init_resp)
        ni, nr = find(req_pl, 40)[0].hex(), find(resp_pl, 40)[0].hex()
        ke_i, ke_r = find(req_pl, 34)[0][4:].hex(), find(resp_pl, 34)[0][4:].hex()
        vals = dict(ike['values'])
        keys = {KEY_LABELS[l]: v for l, v in ike['values'] if l in KEY_LABELS}
        auth_groups = []
        for label, value in ike['values']:
            if label == "IDx'":
                auth_groups.append({})
            if auth_groups is not None and auth_groups and label in (
                    "IDx'", 'SK_p', "octets = message + nonce + prf(Sk_px, IDx')", 'secret',
                    'prf(secret, keypad)', 'AUTH = prf(prf(secret, keypad), octets)'):
                auth_groups[-1][label] = value
        assert len(auth_groups) == 2, sa
        assert bytes.fromhex(auth_groups[0]['secret']) == PSK
        auth = {}
        for side, group, real, peer_nonce in (('initiator', auth_groups[0], init_req, nr),
                                              ('responder', auth_groups[1], init_resp, ni)):
            auth[side] = {'real_message': real.hex(), 'peer_nonce': peer_nonce,
                          'id_body': group["IDx'"],
                          'signed_octets': group["octets = message + nonce + prf(Sk_px, IDx')"],
                          'key_pad_prf': group['prf(secret, keypad)'],
                          'auth': group['AUTH = prf(prf(secret, keypad), octets)']}
        child_vals = dict(child['values'])
        assert child_vals['seed'] == ni + nr, 'first child seed must be Ni | Nr'
        vector = {
            'source': 'strongSwan 5.9.8 charon-a.log (initiator) and messages.hex in ../interop, '
                      'converted by make-swan-vectors.py',
            'ike_sa': sa,
            'ike_proposal': ike['proposal'], **proposal(ike['proposal']),
            'spi_i': spi_i, 'spi_r': spi_r, 'ni': ni, 'nr': nr, 'ke_i': ke_i, 'ke_r': ke_r,
            'shared_secret': vals['shared Diffie Hellman secret'],
            'expected': keys,
            'psk': PSK.hex(),
            'auth': auth,
            'messages': {'ike_sa_init_request': init_req.hex(), 'ike_sa_init_response': init_resp.hex(),
                         'ike_auth_request': auth_req.hex(), 'ike_auth_response': auth_resp.hex()},
            'child': {'proposal': child['proposal'], **proposal(child['proposal']),
                      'ni': ni, 'nr': nr,
                      'expected': {CHILD_LABELS[l]: v for l, v in child['values'] if l in CHILD_LABELS}},
        }
        for phase in phases[2:]:
            pv = dict(phase['values'])
            if phase['proposal'].startswith('ESP:'):
                ex = next(i for i, (c, _) in enumerate(own) if 'CHILD_SA rekey' in c and 'request' in c)
                dh = pv['DH secret']
                seed = pv['seed']
                assert seed.startswith(dh)
                vector['child_rekey'] = {
                    'proposal': phase['proposal'], **proposal(phase['proposal']),
                    'shared_secret': dh, 'ni': seed[len(dh):len(dh) + 64], 'nr': seed[len(dh) + 64:],
                    'request': own[ex][1].hex(), 'response': own[ex + 1][1].hex(),
                    'expected': {CHILD_LABELS[l]: v for l, v in phase['values'] if l in CHILD_LABELS}}
            else:
                ex = next(i for i, (c, _) in enumerate(own) if 'IKE_SA rekey' in c and 'request' in c)
                req, resp = own[ex][1], own[ex + 1][1]
                req_in = cbc_open(req, keys['sk_ei'])
                resp_in = cbc_open(resp, keys['sk_er'])
                # proposal substructure: SPI Size at offset 6, SPI from offset 8
                new_spi_i = find(req_in, 33)[0][8:16].hex()
                new_spi_r = find(resp_in, 33)[0][8:16].hex()
                new_sa = [(c, bytes.fromhex(h)) for c, h in msgs if f'spi_i={new_spi_i}' in c]
                assert new_sa and all(f'spi_r={new_spi_r}' in c for c, _ in new_sa)
                vector['ike_rekey'] = {
                    'proposal': phase['proposal'], **proposal(phase['proposal']),
                    'shared_secret': pv['shared Diffie Hellman secret'],
                    'ni': find(req_in, 40)[0].hex(), 'nr': find(resp_in, 40)[0].hex(),
                    'spi_i': new_spi_i, 'spi_r': new_spi_r,
                    'request': req.hex(), 'response': resp.hex(),
                    'new_sa_messages': [m.hex() for _, m in new_sa],
                    'expected': {KEY_LABELS[l]: v for l, v in phase['values'] if l in KEY_LABELS}}
        path = f'swan-{name}-{number}.json'
        with open(path, 'w') as f:
            json.dump(vector, f, indent=1)
            f.write('\n')
        print(path, ', '.join(k for k in ('child_rekey', 'ike_rekey') if k in vector))

main()
