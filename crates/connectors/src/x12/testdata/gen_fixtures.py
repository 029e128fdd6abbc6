#!/usr/bin/env python3
# Builds the fixtures: segments written by hand below; this only pads the ISA fields and
# counts SE01/GE01/IEA01 so the valid fixtures are internally consistent.
import os
OUT = os.path.dirname(os.path.abspath(__file__))

def isa(sender_q, sender, receiver_q, receiver, date, time, isa11, version, ctl, usage, e, comp):
    f = ["ISA", "00", " " * 10, "00", " " * 10, sender_q, sender.ljust(15), receiver_q,
         receiver.ljust(15), date, time, isa11, version, ctl, "0", usage, comp]
    s = e.join(f)
    assert len(s) == 105, len(s)
    return s

def build(isa_seg, groups, e="*", term="~", nl="", ctl="000000905"):
    segs = [isa_seg]
    for gs, sets, gctl in groups:
        segs.append(gs)
        for st_ctl, body, sid in sets:
            seg_list = [f"ST{e}{sid}{e}{st_ctl}"] + body
            seg_list.append(f"SE{e}{len(seg_list) + 1}{e}{st_ctl}")
            segs += seg_list
        segs.append(f"GE{e}{len(sets)}{e}{gctl}")
    segs.append(f"IEA{e}{len(groups)}{e}{ctl}")
    return "".join(s + term + nl for s in segs)

def write(name, text):
    with open(os.path.join(OUT, name), "w", newline="") as fh:
        fh.write(text)


# ---- 214: several statuses for one shipment (set 0001), and a second shipment (0002)
set1 = """B10*PRO7781234*SHIP-1001*ABCD
L11*BOL-55512*BM
L11*PO-4500012345*PO
LX*1
AT7*AF*NS***20260309*0815*ET
MS1*ATLANTA*GA*US
MS2*ABCD*TRL4521*TL
LX*2
AT7*X4*NS***20260310*0630*UT
MS1*CHARLOTTE*NC*US
LX*3
AT7*P1*NS***20260310*0545*LT
MS1*CHARLOTTE*NC*US
LX*4
AT7*X6*NS***20260311*0710*ET
MS1*RALEIGH*NC*US
LX*5
AT7*D1*NS***20260311*1342*ET
MS1*RALEIGH*NC*US
L11*RCPT-99812*DO
AT8*G*L*31.5*2""".split("\n")
set2 = """B10*PRO7781299*SHIP-1002*ABCD
L11*BOL-55513*BM
AT8*G*K*120*3*1*E*14.2
LX*1
AT7*AM*NS***20260310*1100*CT
MS1*MEMPHIS*TN*US
LX*2
AT7*SD*AO***20260310*1800*CT
MS1*MEMPHIS*TN*US
LX*3
AT7*AH*AQ***20260311*1015*CT
MS1*NASHVILLE*TN*US
AT7*A7*BS***20260311*1020*CT
MS1*NASHVILLE*TN*US
LX*4
AT7***AB*AD*20260312*0900*CT""".split("\n")
i = isa("02", "ABCD", "ZZ", "WAYBILLHUB", "260311", "1400", "U", "00401", "000000905", "P", "*", ">")
write("214_shipment_status.edi", build(i, [("GS*QM*ABCD*WAYBILLHUB*20260311*1400*905*X*004010",
      [("0001", set1, "214"), ("0002", set2, "214")], "905")], nl="\n"))

# ---- 856
asn = """BSN*00*SHIP-1001*20260309*0645*0001
HL*1**S
TD1*CTN25*2****G*31.5*LB
TD5**2*ABCD*M*ABCD FREIGHT
REF*BM*BOL-55512
DTM*011*20260309*0800*ET
DTM*017*20260311
N1*SF*ACME DC ATLANTA*92*WH01
N1*ST*BIG STORE 42*92*0042
HL*2*1*O
PRF*PO-4500012345***20260301
HL*3*2*P
MAN*GM*00000614141000000014
REF*2I*ABCD7781234001
HL*4*3*I
LIN**VP*WIDGET-1
SN1**10*EA
HL*5*2*P
MAN*GM*00000614141000000021
REF*2I*ABCD7781234002
HL*6*5*I
LIN**VP*WIDGET-2
SN1**5*EA
CTT*6""".split("\n")
i = isa("ZZ", "ACMEWMS", "ZZ", "WAYBILLHUB", "260309", "0650", "U", "00401", "000000101", "P", "*", ">")
write("856_ship_notice.edi", build(i, [("GS*SH*ACMEWMS*WAYBILLHUB*20260309*0650*101*X*004010",
      [("0001", asn, "856")], "101")], nl="\n", ctl="000000101"))

# ---- 856, partial shipment: 10 ordered, 6 shipped of one item (UPC + vendor item
# number), one carton with its gross weight and dimensions; the notice (BSN 10:00) was
# made after the goods shipped (DTM 011 08:00), both local times.
partial = """BSN*00*SHIP-3001*20260309*1000*0001
HL*1**S
TD1*CTN25*1****G*12.4*LB
TD5**2*ABCD*M*ABCD FREIGHT
REF*BM*BOL-66001
REF*CN*PRO-66001
DTM*011*20260309*0800
N1*ST*BIG STORE 42*92*0042
N4*RALEIGH*NC*27601*US
HL*2*1*O
PRF*PO-4500099999
HL*3*2*P
MAN*GM*00000614141000000038
MEA*PD*LN*16*IN
MEA*PD*WD*12*IN
MEA*PD*HT*8*IN
HL*4*3*I
LIN*1*UP*012345678905*VN*SKU-RED-M
SN1**6*EA**10*EA
PO4*6*1*EA*CTN25
PID*F****RED T-SHIRT SIZE M
CTT*4""".split("\n")
i = isa("ZZ", "ACMEWMS", "ZZ", "WAYBILLHUB", "260309", "1005", "U", "00401", "000000102", "P", "*", ">")
write("856_partial_shipment.edi", build(i, [("GS*SH*ACMEWMS*WAYBILLHUB*20260309*1005*102*X*004010",
      [("0001", partial, "856")], "102")], nl="\n", ctl="000000102"))

# ---- 210
inv = """B3**INV-88123*SHIP-1001*PP**20260312*48250**20260311*035*ABCD
C3*USD
N9*BM*BOL-55512
N9*PO*PO-4500012345
G62*11*20260309
N1*BT*ACME CORP PAYABLES*93*ACME01
N4*ATLANTA*GA*30301*US
N1*SH*ACME DC ATLANTA*93*WH01
N4*ATLANTA*GA*30336*US
N1*CN*BIG STORE 42*93*0042
N3*100 MAIN ST
N4*RALEIGH*NC*27601*US
LX*1
L5*1*WIDGETS*156600*N
L0*1*31.5*FR*31.5*G***2*CTN**L
L1*1*395.00*FR*39500****400
L7*1******70
L1*2***6250****FUE****FUEL SURCHARGE
L1*3***2500****LFT****LIFTGATE DELIVERY
L3*31.5*G***48250******2*L""".split("\n")
i = isa("02", "ABCD", "ZZ", "WAYBILLHUB", "260312", "0900", "U", "00401", "000000412", "P", "*", ">")
write("210_freight_invoice.edi", build(i, [("GS*IM*ABCD*WAYBILLHUB*20260312*0900*412*X*004010",
      [("0001", inv, "210")], "412")], nl="\n", ctl="000000412"))

# ---- 214 with non-default separators: | elements, ^ components, { repetition (00501), ~ + LF
sep = """B10|PRO5550001|SHIP-2001|WXYZ
L11|BOL-77001|BM
LX|1
AT7|X6|NS|||20260115|0705|CT
MS1|DENVER|CO|US
LX|2
AT7|D1||||20260115|1512|MT
MS1|BOULDER|CO|US""".split("\n")
i = isa("02", "WXYZ", "ZZ", "WAYBILLHUB", "260115", "1600", "{", "00501", "000000077", "T", "|", "^")
write("214_custom_separators.edi", build(i, [("GS|QM|WXYZ|WAYBILLHUB|20260115|1600|77|X|005010",
      [("7701", sep, "214")], "77")], e="|", nl="\n", ctl="000000077"))

# ---- malformed
small = """B10*PRO7781234*SHIP-1001*ABCD
LX*1
AT7*D1*NS***20260311*1342*ET""".split("\n")
i = isa("02", "ABCD", "ZZ", "WAYBILLHUB", "260311", "1400", "U", "00401", "000000906", "P", "*", ">")
good = build(i, [("GS*QM*ABCD*WAYBILLHUB*20260311*1400*906*X*004010", [("0001", small, "214")], "906")],
             nl="\n", ctl="000000906")
write("bad_segment_count.edi", good.replace("SE*5*0001", "SE*7*0001"))
write("control_number_mismatch.edi", good.replace("GE*1*906", "GE*1*907"))
write("truncated_isa.edi", good[:60])
write("214_bad_date.edi", good.replace("20260311*1342", "20260231*1342"))
