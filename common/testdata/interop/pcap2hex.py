import struct,sys
EXCH={34:"IKE_SA_INIT",35:"IKE_AUTH",36:"CREATE_CHILD_SA",37:"INFORMATIONAL"}
d=open(sys.argv[1],'rb').read()
magic=struct.unpack('<I',d[:4])[0]; assert magic==0xa1b2c3d4, hex(magic)
off=24; n=0
print("# UDP payloads of IKEv2 messages between strongSwan 5.9.8 peers a (198.18.0.1 / fd00:18::1) and b (198.18.0.2 / fd00:18::2)")
print("# one message per line: '<index> <a->b|b->a> <src>:<sport> -> <dst>:<dport> <exchange> <request|response> mid=<n> [non-esp-marker-stripped]' comment line, then hex")
print("# on port 4500 the 4-byte non-ESP marker (00000000, RFC 3948 section 2.2) has been stripped from the hex")
import ipaddress
while off<len(d):
    ts,tu,incl,orig=struct.unpack('<IIII',d[off:off+16]); off+=16
    pkt=d[off:off+incl]; off+=incl
    et=struct.unpack('>H',pkt[12:14])[0]; p=pkt[14:]
    if et==0x0800:
        ihl=(p[0]&15)*4; src=ipaddress.ip_address(p[12:16]); dst=ipaddress.ip_address(p[16:20]); assert p[9]==17; u=p[ihl:]
    elif et==0x86dd:
        assert p[6]==17; src=ipaddress.ip_address(p[8:24]); dst=ipaddress.ip_address(p[24:40]); u=p[40:]
    else: continue
    sp,dp,ul=struct.unpack('>HHH',u[:6]); pay=u[8:ul]
    note=""
    if sp==4500 or dp==4500:
        if pay[:4]!=b'\0\0\0\0': continue  # ESP-in-UDP, not IKE
        pay=pay[4:]; note=" non-esp-marker-stripped"
    if len(pay)==1 and pay==b'\xff': continue  # NAT keepalive
    fl=pay[19]; mid=struct.unpack('>I',pay[20:24])[0]
    s=str(src); dirn="a->b" if s in("198.18.0.1","fd00:18::1") else "b->a"
    print(f"# {n} {dirn} {src}:{sp} -> {dst}:{dp} {EXCH.get(pay[18],pay[18])} {'response' if fl&0x20 else 'request'} mid={mid} {'I' if fl&8 else 'R'}-flag-{'set' if fl&8 else 'clear'}{note}")
    print(pay.hex()); n+=1
