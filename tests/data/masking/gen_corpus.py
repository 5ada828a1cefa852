#!/usr/bin/env python3
"""gen_corpus.py - writes the labelled masking corpus (corpus.jsonl, next to
this script) that tests/unit/mask/test_mask_accuracy.c measures precision and
recall on, per detector.

Deterministic: a fixed seed and no clock, so running it again gives the same
bytes (--check compares instead of writing). Every value is synthetic: test
card numbers and random numbers that pass Luhn, fictional phone ranges
(NANP 555-01xx, Ofcom drama numbers), example domains, IBANs built with
random account numbers and computed check digits, random keys and tokens.
No real personal data.

Format (README.md here): one JSON object per line,
  {"id": "email/pos/0007", "group": "email", "kind": "pos"|"neg"|"mixed",
   "text": "...", "spans": [{"start": 5, "end": 22, "det": "email"}, ...],
   "note": "what the line is"}
start/end are UTF-8 byte offsets into text, end exclusive. A span may carry
"also": ["api_key"]: another detector that may report exactly those bytes
without it counting as a false positive (an AWS secret after
aws_secret_access_key= is an api_key too). Everything a detector reports
that is not a labelled span (or an "also" of one) is a false positive.

  usage: gen_corpus.py [--check]
"""
import base64
import hashlib
import hmac
import json
import os
import random
import re
import string
import sys

SEED = 7013  # issue 7, data masking
R = random.Random(SEED)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus.jsonl")

DETECTORS = ["credit_card", "us_ssn", "email", "phone", "iban", "ip_address", "jwt",
             "aws_key", "private_key", "api_key"]


class Rec:
    """One line of text being built, with its labelled spans."""

    def __init__(self, group, kind, note):
        self.group, self.kind, self.note = group, kind, note
        self.buf = b""
        self.spans = []

    def t(self, s):
        self.buf += s.encode()
        return self

    def v(self, det, s, also=()):
        assert det in DETECTORS, det
        start = len(self.buf)
        self.buf += s.encode()
        sp = {"start": start, "end": len(self.buf), "det": det}
        if also:
            sp["also"] = sorted(also)
        self.spans.append(sp)
        return self

    def fmt(self, template, **vals):
        """template with {name} slots ({{ and }} for braces); vals[name] is
        (det, value[, also]) for a labelled value or a plain string."""
        i, lit = 0, ""
        while i < len(template):
            c = template[i]
            if c in "{}" and template[i:i + 2] in ("{{", "}}"):
                lit += c
                i += 2
            elif c == "{":
                j = template.index("}", i)
                self.t(lit)
                lit = ""
                x = vals[template[i + 1:j]]
                if isinstance(x, str):
                    self.t(x)
                else:
                    self.v(*x)
                i = j + 1
            else:
                lit += c
                i += 1
        self.t(lit)
        return self


RECORDS = []


def add(r):
    RECORDS.append(r)


def pick(seq):
    return R.choice(seq)


def digits(n):
    return "".join(R.choice(string.digits) for _ in range(n))


def alnum(n, alphabet=string.ascii_letters + string.digits):
    return "".join(R.choice(alphabet) for _ in range(n))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
         "yuki", "zoe", "amir", "bea", "chen", "dmitri", "fatima", "giulia", "hans", "ines",
         "jorge", "kofi", "lena", "mei", "nora", "omar", "priya", "quinn", "raj", "sofia", "tomas"]
LAST = ["smith", "doe", "roe", "garcia", "muller", "rossi", "dubois", "tanaka", "kim", "nguyen",
        "okafor", "silva", "novak", "jensen", "kowalski", "oneill", "schmidt", "haddad", "patel",
        "larsen", "moreau", "fischer", "costa", "ivanova", "sato"]
WORDS = ["request", "served", "cache", "miss", "upstream", "latency", "retry", "order", "invoice",
         "shipped", "queue", "worker", "session", "commit", "replica", "lag", "billing", "refund",
         "customer", "account", "export", "report", "sync", "batch", "job", "done", "failed"]


def name():
    return pick(FIRST).capitalize() + " " + pick(LAST).capitalize()


def ts():
    return "2024-%02d-%02dT%02d:%02d:%02d.%03dZ" % (R.randint(1, 12), R.randint(1, 28),
                                                   R.randint(0, 23), R.randint(0, 59),
                                                   R.randint(0, 59), R.randint(0, 999))


def date():
    return "2024-%02d-%02d" % (R.randint(1, 12), R.randint(1, 28))


def uuid4():
    h = "%032x" % R.getrandbits(128)
    h = h[:12] + "4" + h[13:16] + pick("89ab") + h[17:]
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def hexs(n):
    return "".join(R.choice("0123456789abcdef") for _ in range(n))


# ---- credit cards ------------------------------------------------------------------------

def luhn_ok(d):
    s = 0
    for i, c in enumerate(reversed(d)):
        v = int(c)
        if i % 2:
            v *= 2
            if v > 9:
                v -= 9
        s += v
    return s % 10 == 0


def luhn_complete(prefix):
    for c in "0123456789":
        if luhn_ok(prefix + c):
            return prefix + c
    raise AssertionError


# network: (prefixes, lengths); the ranges of src/mask/validate.c (ISO/IEC 7812 IINs)
NETWORKS = [
    (["4"], [16, 16, 16, 13, 19]),                                   # Visa
    ([str(x) for x in range(51, 56)], [16]),                        # Mastercard
    ([str(x) for x in range(2221, 2721)], [16]),                    # Mastercard 2-series
    (["34", "37"], [15]),                                           # Amex
    (["6011", "65"] + [str(x) for x in range(644, 650)], [16, 19]),  # Discover
    ([str(x) for x in range(3528, 3590)], [16]),                    # JCB
    ([str(x) for x in range(300, 306)] + ["36", "38"], [14]),       # Diners
    (["62"], [16, 19]),                                             # UnionPay
    (["6759", "5018", "5020", "6304"], [16, 19]),                   # Maestro
    ([str(x) for x in range(2200, 2205)], [16]),                    # Mir
]
TEST_PANS = ["4111111111111111", "4012888888881881", "4242424242424242", "5555555555554444",
             "5105105105105100", "2223003122003222", "378282246310005", "371449635398431",
             "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505",
             "30569309025904", "38520000023237", "6200000000000005", "4000056655665556",
             "5200828282828210", "6759649826438453"]


def gtin13_ok(d):
    return sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(d)) % 10 == 0


def card_digits():
    if R.random() < 0.12:
        return pick(TEST_PANS)
    while True:
        pfx, lens = pick(NETWORKS)
        p, n = pick(pfx), pick(lens)
        d = luhn_complete(p + digits(n - len(p) - 1))
        # 13 digits that are also an EAN-13 are left to product codes (docs/masking.md)
        if not (n == 13 and gtin13_ok(d)):
            return d


def card_format(d):
    n = len(d)
    style = R.random()
    if style < 0.35 or n == 13:
        return d
    sep = pick(" -") if style < 0.9 else " "
    if n == 15:
        g = [d[:4], d[4:10], d[10:]]
    elif n == 14:
        g = [d[:4], d[4:10], d[10:]]
    else:
        g = [d[i:i + 4] for i in range(0, n, 4)]
    return sep.join(g)


CARD_CTX = [
    ('{{"card_number": "{v}", "exp": "%02d/%02d"}}', "json"),
    ("paid with card {v} exp %02d/%02d", "prose"),
    ("%s INFO payment ok pan={v} amount=%d.%02d EUR", "log"),
    ("%d,{v},%02d/%02d,%s", "csv"),
    ("  card: {v}", "yaml"),
    ("  %d | %s | {v} | 2027-11", "psql"),
    ("%d\t{v}\t2027-%02d-28", "copy"),
    ("INSERT INTO cards VALUES (%d, '{v}', 'active');", "sql"),
    ("Card number: {v}\nExpiry: %02d/%02d", "form"),
    ("refund to {v} (%s) issued", "prose"),
    ("<td>{v}</td>", "html"),
    ("card={v}&cvc=%03d", "query"),
]


def card_ctx():
    tpl, kind = pick(CARD_CTX)
    args = {
        "json": lambda: (R.randint(1, 12), R.randint(25, 33)),
        "log": lambda: (ts(), R.randint(1, 999), R.randint(0, 99)),
        "csv": lambda: (R.randint(1, 99999), R.randint(1, 12), R.randint(25, 33),
                        pick(["VISA", "MC", "AMEX"])),
        "psql": lambda: (R.randint(1, 9999), name()),
        "copy": lambda: (R.randint(1, 99999), R.randint(1, 12)),
        "sql": lambda: R.randint(1, 9999),
        "form": lambda: (R.randint(1, 12), R.randint(25, 33)),
        "query": lambda: R.randint(0, 999),
    }
    if kind == "prose":
        a = (R.randint(1, 12), R.randint(25, 33)) if "exp" in tpl else name()
    elif kind in args:
        a = args[kind]()
    else:
        return tpl, kind
    return tpl % a, kind


def gen_cards():
    for _ in range(260):
        ctx, kind = card_ctx()
        d = card_digits()
        add(Rec("credit_card", "pos", "card, %d digits, %s" % (len(d), kind))
            .fmt(ctx, v=("credit_card", card_format(d))))
    negs = []
    for _ in range(60):  # a known issuer and layout, Luhn fails
        d = card_digits()
        while len(d) > 16:  # a longer grouped number has shorter windows that may be cards
            d = card_digits()
        bad = d[:-1] + str((int(d[-1]) + R.randint(1, 9)) % 10)
        negs.append(("order %s shipped" % card_format(bad), "Luhn fails"))
    for _ in range(30):  # Luhn passes, no issuer starts with 0, 1, 7, 8 or 9
        d = luhn_complete(pick("01789") + digits(14))
        negs.append(("account no. %s" % card_format(d), "Luhn ok, no issuer"))
    for _ in range(20):  # IMEIs are Luhn numbers of 15 digits
        d = luhn_complete(pick(["35", "49", "86", "01"]) + digits(12))
        negs.append(("device IMEI %s registered" % d, "IMEI (15-digit Luhn)"))
    for _ in range(20):
        negs.append(("ts=%d%03d event=login" % (R.randint(1600000000, 1800000000),
                                                R.randint(0, 999)), "epoch milliseconds"))
    for _ in range(15):
        negs.append(("tracking 9400%s%s" % (digits(14), digits(4)), "USPS tracking, 22 digits"))
    for _ in range(15):
        d = card_digits()
        negs.append(("ratio 0.%s" % d, "decimal fraction"))
    for _ in range(15):
        negs.append(("order %s-%s-%s" % (digits(4), digits(4), digits(4)), "order number 4-4-4"))
    for _ in range(10):
        d = card_digits()
        if len(d) == 16:
            negs.append(("ref %s %s-%s %s" % (d[:4], d[4:8], d[8:12], d[12:]), "mixed separators"))
    for _ in range(15):
        isbn = "978" + digits(9)
        s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(isbn))
        isbn += str((10 - s % 10) % 10)
        negs.append(("ISBN %s, %s-%s-%s-%s-%s" % (isbn, isbn[:3], isbn[3], isbn[4:7],
                                                  isbn[7:12], isbn[12]), "ISBN-13"))
    for _ in range(15):
        negs.append(("invoice INV-%s-%s total %d.%02d" % (digits(4), digits(10),
                                                        R.randint(1, 9999), R.randint(0, 99)),
                     "invoice number"))
    for _ in range(10):
        negs.append(("gtin %s0%s" % (digits(1), digits(19)), "20+ digit run"))
    for _ in range(40):  # German products: GS1 prefixes 400-440, like a Visa-13 number
        e = str(R.randint(400, 440)) + digits(9)
        e = [e + c for c in string.digits if gtin13_ok(e + c)][0]
        negs.append((pick(["EAN %s", "gtin=%s", "%d,%%s,%d.%02d EUR" % (R.randint(1, 9999),
                                                                      R.randint(1, 99),
                                                                      R.randint(0, 99)),
                           '{"sku": "A-%s", "ean": "%%s"}' % digits(5)]) % e, "EAN-13 barcode"))
    for text, note in negs:
        add(Rec("credit_card", "neg", note).t(text))


# ---- SSNs ----------------------------------------------------------------------------------

def ssn_parts():
    while True:
        a = R.randint(1, 899)
        if a != 666:
            break
    return "%03d" % a, "%02d" % R.randint(1, 99), "%04d" % R.randint(1, 9999)


SSN_CTX = ["ssn: {v}", "SSN {v}", '{{"ssn": "{v}", "dob": "%s"}}', "Social Security Number: {v}",
           "applicant %s, SSN {v}, verified", "%d,%s,{v},%s", "  ssn: '{v}'",
           "tax_id={v} status=ok", "  %d | %s | {v}", "UPDATE people SET ssn = '{v}' WHERE id = %d;",
           "<ssn>{v}</ssn>", "SSN on file ends {v}."]


def ssn_ctx():
    tpl = pick(SSN_CTX)
    n = tpl.count("%")
    if n == 0:
        return tpl
    if "dob" in tpl:
        return tpl % date()
    if tpl.startswith("applicant"):
        return tpl % name()
    if tpl.startswith("%d,"):
        return tpl % (R.randint(1, 9999), name(), date())
    if "|" in tpl:
        return tpl % (R.randint(1, 9999), name())
    return tpl % R.randint(1, 9999)


def gen_ssn():
    for _ in range(220):
        a, g, s = ssn_parts()
        sep = "-" if R.random() < 0.8 else " "
        add(Rec("us_ssn", "pos", "SSN").fmt(ssn_ctx(), v=("us_ssn", sep.join([a, g, s]))))
    negs = []
    for _ in range(12):
        negs.append(("ssn 000-%02d-%04d" % (R.randint(1, 99), R.randint(1, 9999)), "area 000"))
        negs.append(("ssn 666-%02d-%04d" % (R.randint(1, 99), R.randint(1, 9999)), "area 666"))
        negs.append(("ITIN 9%02d-%02d-%04d" % (R.randint(0, 99), R.randint(50, 99),
                                              R.randint(1, 9999)), "area 9xx (ITIN)"))
        a, g, s = ssn_parts()
        negs.append(("ssn %s-00-%s" % (a, s), "group 00"))
        negs.append(("ssn %s-%s-0000" % (a, g), "serial 0000"))
    for _ in range(40):
        negs.append(("customer id %s created" % digits(9), "random 9-digit id"))
    for _ in range(20):
        negs.append(("zip %05d-%04d" % (R.randint(501, 99950), R.randint(0, 9999)), "ZIP+4"))
    for _ in range(20):
        negs.append(("EIN %02d-%07d" % (R.randint(10, 99), R.randint(0, 9999999)), "EIN"))
    for _ in range(15):
        a, g, s = ssn_parts()
        negs.append(("part %s-%s-%s-%s" % (a, g, s, digits(2)), "part of a longer dashed number"))
    for _ in range(15):
        negs.append(("ref %s-%s-%s" % (digits(2), digits(3), digits(4)), "2-3-4 reference"))
    for _ in range(15):
        negs.append(("%s build 1.%d.%d" % (date(), R.randint(0, 20), R.randint(0, 200)),
                     "date and version"))
    for text, note in negs:
        add(Rec("us_ssn", "neg", note).t(text))


# ---- e-mail --------------------------------------------------------------------------------

DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com",
           "eu.corp.example.com", "example.co.uk", "example.de", "example.fr", "example.jp",
           "example.com.au", "xn--bcher-kva.example", "shop.example", "dept.example.edu",
           "example.travel", "EXAMPLE.COM", "my-company.example", "x.example.org"]


def email():
    f, l = pick(FIRST), pick(LAST)
    r = R.random()
    if r < 0.3:
        local = f + "." + l
    elif r < 0.45:
        local = f + l + str(R.randint(1, 999))
    elif r < 0.55:
        local = f + "_" + l
    elif r < 0.65:
        local = f[0] + l
    elif r < 0.75:
        local = f + "+" + pick(["news", "billing", "test", "2024"])
    elif r < 0.85:
        local = f + "." + l + "-" + str(R.randint(1, 99))
    elif r < 0.92:
        local = (f + "." + l).upper()
    else:
        local = f.capitalize() + "." + l.capitalize()
    return local + "@" + pick(DOMAINS)


EMAIL_CTX = ["From: %s <{v}>", "mailto:{v}", '{{"email": "{v}", "verified": true}}',
             "contact {v} for access.", "user={v} action=login status=ok", "%d,%s,{v},%s",
             "  email: {v}", "Reply-To: {v}", "WHERE email = '{v}'", "(owner: {v})",
             "%s INFO password reset sent to {v}", "  %d | %s | {v}", "Ansprechpartner: {v}"]


def email_ctx():
    tpl = pick(EMAIL_CTX)
    if tpl.startswith("From"):
        return tpl % name()
    if tpl.startswith("%d,"):
        return tpl % (R.randint(1, 9999), name(), date())
    if tpl.startswith("%s INFO"):
        return tpl % ts()
    if "|" in tpl:
        return tpl % (R.randint(1, 9999), name())
    return tpl


def gen_email():
    for _ in range(220):
        add(Rec("email", "pos", "e-mail").fmt(email_ctx(), v=("email", email())))
    for _ in range(20):
        a, b = email(), email()
        add(Rec("email", "pos", "two addresses").fmt("cc: {a}, {b}", a=("email", a),
                                                     b=("email", b)))
    negs = []
    for _ in range(8):
        negs += [("login as %s@localhost" % pick(FIRST), "one-label host"),
                 ("ssh deploy@ci-runner-%02d" % R.randint(1, 99), "one-label host"),
                 ("ping @%s in #ops" % pick(FIRST), "handle"),
                 ("%s@%d.%d.%d" % (pick(["lodash", "react", "react-dom", "typescript", "express"]),
                                   R.randint(1, 20), R.randint(0, 30), R.randint(0, 40)),
                  "package@version"),
                 ("@types/node@%d.%d.%d" % (R.randint(14, 22), R.randint(0, 20),
                                            R.randint(0, 40)), "scoped package@version"),
                 ("image nginx@sha256:%s" % hexs(64), "image digest"),
                 ("%s@example" % pick(FIRST), "no TLD"),
                 ("%s@%s.%d" % (pick(FIRST), pick(LAST), R.randint(1, 999)), "numeric TLD"),
                 ("x@y.z", "one-letter TLD"),
                 ("a@b", "no host"),
                 ("%s@-%s.com" % (pick(FIRST), pick(LAST)), "label starts with -"),
                 ("%s@%s..com" % (pick(FIRST), pick(LAST)), "empty label"),
                 ("meeting @ 10:%02d in room %d" % (R.randint(0, 59), R.randint(1, 500)), "@ in prose"),
                 ("3 @ $%d.%02d each" % (R.randint(1, 99), R.randint(0, 99)), "@ as price"),
                 ("@Override public String %s()" % pick(WORDS), "annotation"),
                 ('<img src="/img/%s@2x.png" srcset="/img/%s@3x.png 3x">' % (pick(WORDS),
                                                                          pick(WORDS)),
                  "scaled image name"),
                 ("GET /static/%s-icon@2x.webp 200" % pick(WORDS), "scaled image name")]
    for text, note in negs:
        add(Rec("email", "neg", note).t(text))


# ---- phones ---------------------------------------------------------------------------------

def nanp():
    area = "%d%d%d" % (R.randint(2, 9), R.randint(0, 8), R.randint(0, 9))
    line = "01%02d" % R.randint(0, 99)
    ex = "555"
    f = R.randint(0, 8)
    return [
        "(%s) %s-%s", "%s-%s-%s", "%s.%s.%s", "1-%s-%s-%s", "+1 %s %s %s", "+1 (%s) %s-%s",
        "+1-%s-%s-%s", "+1%s%s%s", "(%s)%s-%s",
    ][f] % (area, ex, line)


def intl():
    r = R.randint(0, 28)
    d = digits
    return [
        lambda: "+44 20 7946 0%s" % d(3),
        lambda: "020 7946 0%s" % d(3),
        lambda: "+44 (0)20 7946 0%s" % d(3),
        lambda: "+44 7700 900%s" % d(3),
        lambda: "0113 496 0%s" % d(3),
        lambda: "+49 30 %s" % d(8),
        lambda: "(030) %s %s" % (d(4), d(4)),
        lambda: "+49 (0)30 %s" % d(8),
        lambda: "+49 151 %s" % d(8),
        lambda: "0%d %s %s %s %s" % (R.randint(1, 9), d(2), d(2), d(2), d(2)),
        lambda: "+33 %d %s %s %s %s" % (R.randint(1, 9), d(2), d(2), d(2), d(2)),
        lambda: "+39 06 %s %s" % (d(4), d(4)),
        lambda: "06 %s %s" % (d(4), d(4)),
        lambda: "+34 %d%s %s %s %s" % (R.randint(6, 9), d(2), d(2), d(2), d(2)),
        lambda: "+81 3-%s-%s" % (d(4), d(4)),
        lambda: "03-%s-%s" % (d(4), d(4)),
        lambda: "+61 2 %s %s" % (d(4), d(4)),
        lambda: "(02) %s %s" % (d(4), d(4)),
        lambda: "+91 9%s %s" % (d(4), d(5)),
        lambda: "+55 11 9%s-%s" % (d(4), d(4)),
        lambda: "+86 10 %s %s" % (d(4), d(4)),
        lambda: "+31 20 %s %s" % (d(3), d(4)),
        lambda: "020 %s %s" % (d(3), d(4)),
        lambda: "+353 1 %s %s" % (d(3), d(4)),
        lambda: "07700 900%s" % d(3),
        lambda: "030 %s" % d(8),
        lambda: "089 %s" % d(7),
        lambda: "06-%s" % d(8),
        lambda: "0%d.%s.%s.%s.%s" % (R.randint(1, 9), d(2), d(2), d(2), d(2)),
    ][r]()


PHONE_CTX = ["tel: {v}", "Phone: {v}", '{{"phone": "{v}"}}', "call me at {v} after 5pm",
             "TEL;TYPE=cell:{v}", "%d,%s,{v}", "  phone: '{v}'", "mobile={v}&opt_in=1",
             "  %d | %s | {v}", "Tel. {v} (Zentrale)", "fax {v}.", "%s INFO sms sent to {v} ok"]


def phone_ctx():
    tpl = pick(PHONE_CTX)
    if tpl.startswith("%d,"):
        return tpl % (R.randint(1, 9999), name())
    if "|" in tpl:
        return tpl % (R.randint(1, 9999), name())
    if tpl.startswith("%s INFO"):
        return tpl % ts()
    return tpl


def gen_phone():
    for _ in range(120):
        add(Rec("phone", "pos", "NANP").fmt(phone_ctx(), v=("phone", nanp())))
    for _ in range(160):
        add(Rec("phone", "pos", "international / national").fmt(phone_ctx(), v=("phone", intl())))
    negs = []
    for _ in range(10):
        negs += [("at %s %02d:%02d:%02d" % (date(), R.randint(0, 23), R.randint(0, 59),
                                           R.randint(0, 59)), "timestamp"),
                 ("ts %s" % ts().replace("Z", "+0%d:00" % R.randint(1, 9)), "ISO timestamp"),
                 ("epoch %d" % R.randint(1500000000, 1800000000), "epoch seconds"),
                 ("id %s" % ("%d%s" % (R.randint(2, 9), digits(9))), "bare 10 digits"),
                 ("on %02d/%02d/%d" % (R.randint(1, 12), R.randint(1, 28), R.randint(1990, 2030)),
                  "date"),
                 ("on %02d.%02d.%d" % (R.randint(1, 28), R.randint(1, 12), R.randint(1990, 2030)),
                  "date"),
                 ("1%s-%s-%s" % (digits(2), digits(3), digits(4)), "area code 1xx"),
                 ("call 555-01%02d" % R.randint(0, 99), "7 digits"),
                 ("%d%s-555-01%02d-%s" % (R.randint(2, 9), digits(2), R.randint(0, 99), digits(2)),
                  "longer dashed number"),
                 ("tz +0%d30" % R.randint(1, 9), "UTC offset"),
                 ("+%s" % digits(5), "too short for E.164"),
                 ("price $%d,%03d.%02d" % (R.randint(1, 99), R.randint(0, 999), R.randint(0, 99)),
                  "price"),
                 ("open 0900 - 1730 daily", "opening hours"),
                 ("build %d.%d.%d-%s" % (R.randint(1, 9), R.randint(0, 20), R.randint(0, 99),
                                         digits(4)), "version"),
                 ("%d:%02d:%02d.%03d" % (R.randint(0, 23), R.randint(0, 59), R.randint(0, 59),
                                         R.randint(0, 999)), "time")]
    for text, note in negs:
        add(Rec("phone", "neg", note).t(text))


# ---- IBAN -------------------------------------------------------------------------------------

# BBAN layouts of the SWIFT IBAN registry: n digits, a upper-case letters, c alphanumerics.
IBAN_BBAN = {
    "DE": "18n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n", "IT": "1a10n12c",
    "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n", "SE": "20n", "NO": "11n", "DK": "14n",
    "FI": "14n", "IE": "4a14n", "PT": "21n", "LU": "3n13c", "CZ": "20n", "HU": "24n",
    "RO": "4a16c", "GR": "7n16c", "TR": "5n1n16c", "SA": "2n18c", "AE": "3n16n",
    "BR": "8n5n10n1a1c", "IL": "19n", "MT": "4a5n18c", "HR": "17n", "SI": "15n", "SK": "20n",
    "LT": "16n", "EE": "16n", "LV": "4a13c",
}


def bban(cc):
    spec, out, num = IBAN_BBAN[cc], "", ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        k = int(num)
        num = ""
        alpha = {"n": string.digits, "a": string.ascii_uppercase,
                 "c": string.ascii_uppercase + string.digits}[ch]
        out += "".join(R.choice(alpha) for _ in range(k))
    return out


def mod97(s):
    return int("".join(str(int(c, 36)) for c in s)) % 97


def iban_make(cc):
    b = bban(cc)
    check = 98 - mod97(b + cc + "00")
    return cc + "%02d" % check + b


def iban_valid(s):
    return mod97(s[4:] + s[:4]) == 1


def paper(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


IBAN_EXAMPLES = ["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
                 "NL91ABNA0417164300", "ES9121000418450200051332", "CH9300762011623852957",
                 "BE68539007547034", "NO9386011117947", "MT84MALT011000012345MTLCAST001S"]
IBAN_CTX = ["IBAN: {v}", '{{"iban": "{v}", "bic": "%s"}}', "transfer to {v} (BIC %s)",
            "Kontonummer/IBAN {v}", "%d;%s;{v};EUR", "  iban: {v}", "payee_account={v}&amount=%d",
            "IBAN {v}.", "  %d | %s | {v}"]


def iban_ctx():
    tpl = pick(IBAN_CTX)
    bic = "".join(R.choice(string.ascii_uppercase) for _ in range(6)) + "2X"
    if "bic" in tpl or "BIC" in tpl:
        return tpl % bic
    if tpl.startswith("%d;"):
        return tpl % (R.randint(1, 9999), name())
    if "amount" in tpl:
        return tpl % R.randint(1, 99999)
    if "|" in tpl:
        return tpl % (R.randint(1, 9999), name())
    return tpl


def gen_iban():
    ccs = sorted(IBAN_BBAN)
    for i in range(240):
        s = pick(IBAN_EXAMPLES) if i % 12 == 0 else iban_make(ccs[i % len(ccs)])
        assert iban_valid(s), s
        v = paper(s) if R.random() < 0.4 else s
        add(Rec("iban", "pos", "IBAN " + s[:2]).fmt(iban_ctx(), v=("iban", v)))
    negs = []
    for _ in range(60):
        s = iban_make(pick(ccs))
        while True:
            i = R.randrange(4, len(s))
            c = s[i]
            alpha = string.digits if c.isdigit() else string.ascii_uppercase
            bad = s[:i] + R.choice(alpha.replace(c, "")) + s[i + 1:]
            if not iban_valid(bad):
                break
        negs.append(("IBAN: %s" % (paper(bad) if R.random() < 0.4 else bad), "mod-97 fails"))
    for _ in range(20):
        s = iban_make(pick(ccs))
        cut = s[:-1] if R.random() < 0.5 else s + pick(string.digits)
        negs.append(("account %s" % cut, "wrong length for the country"))
    for _ in range(20):
        b = digits(18)
        cc = pick(["US", "XX", "ZZ", "CA", "AU"])
        s = cc + "%02d" % (98 - mod97(b + cc + "00")) + b
        negs.append(("acct %s" % s, "no IBAN country"))
    for _ in range(20):
        negs.append(("VAT %s" % pick(["DE%s" % digits(9), "ATU%s" % digits(8),
                                      "FR%s%s" % (digits(2), digits(9)), "GB%s" % digits(9),
                                      "NL%sB%s" % (digits(9), digits(2))]), "VAT number"))
    for _ in range(20):
        negs.append(("BIC %s%s%s" % ("".join(R.choice(string.ascii_uppercase) for _ in range(4)),
                                     pick(["DE", "GB", "FR", "NL"]),
                                     pick(["FF", "2L", "PP", "22XXX", "MM500"])), "BIC"))
    for _ in range(20):
        negs.append(("part %s%s-%s" % (pick(ccs), digits(2), digits(6)), "part number"))
    for text, note in negs:
        add(Rec("iban", "neg", note).t(text))


# ---- IP addresses -------------------------------------------------------------------------------

def octet():
    return str(R.choice([R.randint(0, 9), R.randint(10, 99), R.randint(100, 255)]))


def ipv4():
    r = R.random()
    if r < 0.25:
        return "10.%s.%s.%s" % (octet(), octet(), octet())
    if r < 0.45:
        return "192.168.%s.%s" % (octet(), octet())
    if r < 0.55:
        return "172.%d.%s.%s" % (R.randint(16, 31), octet(), octet())
    if r < 0.7:
        return pick(["192.0.2.", "198.51.100.", "203.0.113."]) + octet()
    return "%d.%s.%s.%s" % (R.randint(1, 223), octet(), octet(), octet())


def ipv6():
    g = lambda: "%x" % R.randint(0, 0xffff)
    r = R.randint(0, 11)
    return [
        lambda: "2001:db8::%s" % g(),
        lambda: "2001:db8:%s:%s::%s" % (g(), g(), g()),
        lambda: "fe80::%s:%s:%s:%s" % (g(), g(), g(), g()),
        lambda: "::1",
        lambda: "::ffff:%s" % ipv4(),
        lambda: ":".join("%04x" % R.randint(0, 0xffff) for _ in range(8)),
        lambda: ":".join(g() for _ in range(8)),
        lambda: ("2001:DB8:%s::%s" % (g(), g())).upper(),
        lambda: "2001:db8:%s::" % g(),
        lambda: "fd%02x:%s:%s::%s" % (R.randint(0, 255), g(), g(), g()),
        lambda: "2001:db8:0:0:%s:0:0:%s" % (g(), g()),
        lambda: "64:ff9b::%s" % ipv4(),
    ][r]()


IP_CTX = ["client=%s", "from %s port %d ssh2", "X-Forwarded-For: %s, %s", "host %s.",
          '%s - - [10/Oct/2024:13:55:%02d +0000] "GET /api/v1/items HTTP/1.1" 200 %d',
          '{{"remote_addr": "%s", "status": %d}}', "listen %s:%d", "  %d | %s | %s",
          "allow %s/%d;", "peer [%s]:%d connected", "src=%s dst=%s proto=TCP"]


def gen_ip():
    for i in range(280):
        tpl = pick(IP_CTX)
        six = i % 3 == 0
        a = ipv6() if six else ipv4()
        r = Rec("ip_address", "pos", "IPv6" if six else "IPv4")
        if tpl.startswith("client"):
            r.t("client=").v("ip_address", a).t(" took=%dms" % R.randint(1, 999))
        elif tpl.startswith("from"):
            r.t("Accepted publickey for deploy from ").v("ip_address", a).t(
                " port %d ssh2" % R.randint(1024, 65535))
        elif tpl.startswith("X-Forwarded"):
            b = ipv4()
            r.t("X-Forwarded-For: ").v("ip_address", a).t(", ").v("ip_address", b)
        elif tpl.startswith("host"):
            r.t("resolved to ").v("ip_address", a).t(".")
        elif tpl.startswith("%s - -"):
            r.v("ip_address", a).t(' - - [10/Oct/2024:13:55:%02d +0000] "GET /api/v1/items '
                                   'HTTP/1.1" 200 %d' % (R.randint(0, 59), R.randint(0, 99999)))
        elif tpl.startswith("{"):
            r.t('{"remote_addr": "').v("ip_address", a).t('", "status": %d}' % pick([200, 404]))
        elif tpl.startswith("listen"):
            if six:
                r.t("listen [").v("ip_address", a).t("]:%d;" % R.randint(80, 9000))
            else:
                r.t("listen ").v("ip_address", a).t(":%d;" % R.randint(80, 9000))
        elif "|" in tpl:
            r.t("  %d | %s | " % (R.randint(1, 999), name())).v("ip_address", a)
        elif tpl.startswith("allow"):
            r.t("allow ").v("ip_address", a).t("/%d;" % (R.randint(8, 32) if not six else 64))
        elif tpl.startswith("peer"):
            r.t("peer [").v("ip_address", a).t("]:%d connected" % R.randint(1024, 65535))
        else:
            r.t("src=").v("ip_address", a).t(" dst=").v("ip_address", ipv4()).t(" proto=TCP")
        add(r)
    negs = []
    for _ in range(8):
        negs += [("%d.%d.%d.%d" % (R.randint(256, 999), R.randint(0, 255), R.randint(0, 255),
                                   R.randint(0, 255)), "octet over 255"),
                 ("version %d.%d.%d" % (R.randint(0, 9), R.randint(0, 30), R.randint(0, 99)),
                  "three-part version"),
                 ("release %d.%d.%d.%d.%d" % tuple(R.randint(0, 20) for _ in range(5)),
                  "five-part version"),
                 ("v%d.%d.%d.%d" % tuple(R.randint(0, 20) for _ in range(4)), "v-prefixed version"),
                 ("Chrome/%d.0.%d.%d" % (R.randint(100, 125), R.randint(1000, 6999),
                                        R.randint(1, 250)), "browser version"),
                 ("0%d.0%d.0%d.0%d" % tuple(R.randint(1, 9) for _ in range(4)), "leading zeros"),
                 ("at %02d:%02d:%02d" % (R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)),
                  "time"),
                 ("mac %s" % ":".join("%02x" % R.randint(0, 255) for _ in range(6)), "MAC address"),
                 ("std::map<int, %s>" % pick(["string", "double"]), "C++ scope"),
                 ("Data::Dumper->new", "Perl package"),
                 ("arn:aws:iam::%s:user/%s" % (digits(12), pick(FIRST)), "ARN"),
                 ("oid 1.3.6.1.4.1.%d.%d" % (R.randint(1, 60000), R.randint(1, 9)), "SNMP OID"),
                 ("net 10.%d.%d" % (R.randint(0, 255), R.randint(0, 255)), "three octets"),
                 ("uuid %s" % uuid4(), "UUID"),
                 ("a :: b", "lone ::"),
                 ("1:2:3:4:5:6:7:8:9", "nine groups"),
                 ("2001:db8::%x::%x" % (R.randint(1, 99), R.randint(1, 99)), "two ::")]
    for text, note in negs:
        add(Rec("ip_address", "neg", note).t(text))


# ---- JWTs and bearer tokens --------------------------------------------------------------------

def jwt():
    kind = R.randint(0, 5)
    claims = {"sub": str(R.randint(1, 10 ** 9)), "iat": R.randint(1600000000, 1800000000)}
    if R.random() < 0.5:
        claims["iss"] = "https://login.example.com/%s" % uuid4()
    if R.random() < 0.5:
        claims["aud"] = pick(["api://orders", "billing", "https://api.example.com"])
        claims["exp"] = claims["iat"] + 3600
    if R.random() < 0.3:
        claims["scope"] = "read write"
    if R.random() < 0.2:
        claims["name"] = name()
    body = b64u(json.dumps(claims, separators=(",", ":")).encode())
    if kind == 0:
        h = {"alg": "none"}
        return b64u(json.dumps(h, separators=(",", ":")).encode()) + "." + body + "."
    if kind == 5:  # JWE compact (RFC 7516 §7.1), five parts
        h = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": hexs(8)}
        return ".".join([b64u(json.dumps(h, separators=(",", ":")).encode()),
                         b64u(R.randbytes(256)), b64u(R.randbytes(12)),
                         b64u(R.randbytes(R.randint(40, 200))), b64u(R.randbytes(16))])
    alg, siglen = [("HS256", 0), ("RS256", 256), ("ES256", 64), ("PS384", 384), ("EdDSA", 64)][kind - 1]
    h = {"alg": alg, "typ": "JWT"}
    if R.random() < 0.5:
        h["kid"] = hexs(16)
    head = b64u(json.dumps(h, separators=(",", ":")).encode())
    signing = (head + "." + body).encode()
    sig = hmac.new(R.randbytes(32), signing, hashlib.sha256).digest() if siglen == 0 \
        else R.randbytes(siglen)
    return head + "." + body + "." + b64u(sig)


def opaque():
    r = R.random()
    if r < 0.3:
        return alnum(R.randint(22, 40))
    if r < 0.5:
        return "ya29." + alnum(60, string.ascii_letters + string.digits + "-_")
    if r < 0.7:
        return base64.b64encode(R.randbytes(R.randint(18, 36))).decode()
    if r < 0.85:
        return "gho_" + alnum(36)
    return uuid4().replace("-", "") + alnum(8)


def gen_jwt():
    for _ in range(200):
        t = jwt()
        r = Rec("jwt", "pos", "JWT")
        f = R.randint(0, 7)
        if f == 0:
            r.t("Authorization: Bearer ").v("jwt", t)
        elif f == 1:
            r.t('{"id_token": "').v("jwt", t, also=["api_key"]).t('", "token_type": "Bearer"}')
        elif f == 2:
            r.t("Cookie: session=").v("jwt", t).t("; theme=dark")
        elif f == 3:
            r.t("https://app.example.com/cb#access_token=").v("jwt", t, also=["api_key"]).t(
                "&token_type=bearer&expires_in=3600")
        elif f == 4:
            r.t("%s DEBUG upstream jwt=" % ts()).v("jwt", t).t(" status=200")
        elif f == 5:
            r.t("curl -H 'Authorization: Bearer ").v("jwt", t).t("' https://api.example.com/v1/me")
        elif f == 6:
            r.t("  jwt: ").v("jwt", t)
        else:
            r.t("the token ").v("jwt", t).t(" expired")
        add(r)
    for _ in range(60):
        t = opaque()
        r = Rec("jwt", "pos", "opaque bearer token")
        if R.random() < 0.5:
            r.t("Authorization: Bearer ").v("jwt", t)
        else:
            r.t("-H 'authorization: bearer ").v("jwt", t).t("'")
        add(r)
    negs = []
    for _ in range(12):
        noalg = b64u(json.dumps({"typ": "JWT", "kid": hexs(8)}, separators=(",", ":")).encode())
        body = b64u(json.dumps({"sub": digits(6)}, separators=(",", ":")).encode())
        negs += [("%s.%s.%s" % (noalg, body, b64u(R.randbytes(32))), "header without alg"),
                 ('".dockerconfigjson": "%s"' % base64.b64encode(json.dumps(
                     {"auths": {"registry.example.com": {"auth": "x"}}}).encode()).decode(),
                  "base64 JSON, one part"),
                 ("send a bearer token issued by the identity provider", "prose"),
                 ("Authorization: Bearer <token>", "placeholder"),
                 ("Authorization: Bearer YOUR_ACCESS_TOKEN_HERE", "placeholder"),
                 ("Authorization: Bearer %s" % ("x" * R.randint(20, 40)), "low entropy"),
                 ("Authorization: Bearer null", "null"),
                 ("bearer tokens expire after %d minutes" % R.randint(5, 90), "prose"),
                 ("data:image/png;base64,iVBORw0KGgo%s" % b64u(R.randbytes(30)), "data URL"),
                 ("xeyJhbGciOiJIUzI1NiJ9.%s.%s" % (body, b64u(R.randbytes(32))), "glued to a word"),
                 ("eyJhbGciOiJIUzI1NiJ9 alone", "header only"),
                 ("token_type=Bearer&expires_in=%d" % R.randint(60, 7200), "token type")]
    for text, note in negs:
        add(Rec("jwt", "neg", note).t(text))


# ---- AWS ----------------------------------------------------------------------------------------

B32 = string.ascii_uppercase + "234567"


def aws_id():
    if R.random() < 0.05:
        return "AKIAIOSFODNN7EXAMPLE"
    return pick(["AKIA", "AKIA", "ASIA", "AROA", "AIDA", "AGPA", "ANPA"]) + alnum(16, B32)


def aws_secret():
    if R.random() < 0.05:
        return "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    return base64.b64encode(R.randbytes(30)).decode()


def gen_aws():
    for _ in range(220):
        r = Rec("aws_key", "pos", "AWS key")
        f = R.randint(0, 9)
        i, s = aws_id(), aws_secret()
        if f == 0:
            r.t("AWS_ACCESS_KEY_ID=").v("aws_key", i, also=["api_key"]).t(
                "\nAWS_SECRET_ACCESS_KEY=").v("aws_key", s, also=["api_key"])
        elif f == 1:
            r.t("[default]\naws_access_key_id = ").v("aws_key", i, also=["api_key"]).t(
                "\naws_secret_access_key = ").v("aws_key", s, also=["api_key"])
        elif f == 2:
            r.t('{"Credentials": {"AccessKeyId": "').v("aws_key", i, also=["api_key"]).t(
                '", "SecretAccessKey": "').v("aws_key", s, also=["api_key"]).t(
                '", "Expiration": "%s"}}' % ts())
        elif f == 3:
            r.t("%s WARN request signed by " % ts()).v("aws_key", i).t(" denied")
        elif f == 4:
            r.t("  secret_key: ").v("aws_key", s, also=["api_key"])
        elif f == 5:
            r.t("| AccessKey | ").v("aws_key", i).t(" | Active |")
        elif f == 6:
            r.t("export AWS_SECRET_ACCESS_KEY=\"").v("aws_key", s, also=["api_key"]).t("\"")
        elif f == 7:
            r.t("key ").v("aws_key", i).t(" rotated on %s" % date())
        elif f == 8:
            r.t('{"aws_secret_access_key": "').v("aws_key", s, also=["api_key"]).t('"}')
        else:
            r.t("s3 upload as ").v("aws_key", i).t(", %d bytes" % R.randint(1, 10 ** 7))
        add(r)
    negs = []
    for _ in range(12):
        i = aws_id()
        negs += [("id %s" % i[:-1], "19 characters"),
                 ("id %s%s" % (i, pick(B32)), "21 characters"),
                 ("id %s" % i.lower(), "lower case"),
                 ("AIDACKCEVSQ6C2EXAMPLE" if R.random() < 0.3 else "user " + "AIDA" + alnum(17, B32),
                  "IAM unique id (21)"),
                 ("commit %s" % hexs(40), "40 hex, no name"),
                 ("checksum: %s" % base64.b64encode(R.randbytes(30)).decode(), "40 base64, no name"),
                 ("arn:aws:iam::%s:role/%s" % (digits(12), pick(WORDS)), "ARN"),
                 ("x%s" % i, "glued to a word"),
                 ("bucket %s-%s-logs" % (pick(WORDS), digits(6)), "bucket name"),
                 ("region=%s-%s-%d" % (pick(["us", "eu", "ap"]), pick(["east", "west", "central"]),
                                       R.randint(1, 3)), "region"),
                 ("request id %s" % uuid4().upper(), "request id")]
    for text, note in negs:
        add(Rec("aws_key", "neg", note).t(text))


# ---- PEM private keys ---------------------------------------------------------------------------

PEM_KINDS = [("PRIVATE KEY", b"\x30\x82\x04\xbd\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7"
              b"\x0d\x01\x01\x01\x05\x00", (600, 1200)),
             ("PRIVATE KEY", b"\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20",
              (32, 32)),
             ("RSA PRIVATE KEY", b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00", (600, 1200)),
             ("EC PRIVATE KEY", b"\x30\x77\x02\x01\x01\x04\x20", (100, 110)),
             ("ENCRYPTED PRIVATE KEY", b"\x30\x82\x05\x0e\x30\x40\x06\x09\x2a\x86", (700, 1250)),
             ("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00\x00\x00\x00\x04none", (300, 400)),
             ("DSA PRIVATE KEY", b"\x30\x82\x01\xbb\x02\x01\x00\x02\x81\x81\x00", (400, 420))]


def pem(label=None, sep="\n"):
    lab, head, (lo, hi) = pick(PEM_KINDS) if label is None else label
    body = base64.b64encode(head + R.randbytes(R.randint(lo, hi))).decode()
    width = 70 if lab == "OPENSSH PRIVATE KEY" else 64
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    hdr = []
    if lab == "RSA PRIVATE KEY" and R.random() < 0.3:
        hdr = ["Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC,%s" % hexs(32).upper(), ""]
    return sep.join(["-----BEGIN %s-----" % lab] + hdr + lines + ["-----END %s-----" % lab])


def public_block(label):
    body = base64.b64encode(R.randbytes(R.randint(200, 600))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN %s-----" % label] + lines + ["-----END %s-----" % label])


def gen_pem():
    for _ in range(110):
        r = Rec("private_key", "pos", "PEM private key")
        f = R.randint(0, 5)
        if f == 0:
            r.t("key file contents:\n").v("private_key", pem()).t("\n")
        elif f == 1:  # a service-account JSON: newlines as \n escapes in the raw text
            r.t('{"type": "service_account", "private_key_id": "').v("api_key", hexs(40))
            r.t('", "private_key": "')
            r.v("private_key", pem(sep="\\n")).t('\\n", "client_email": "')
            r.v("email", "svc-%s@project-%s.iam.example.com" % (digits(4), digits(6))).t('"}')
        elif f == 2:
            k = pem()
            r.t("tls:\n  key: |\n")
            ind = "    " + k.replace("\n", "\n    ")
            r.t("    ").v("private_key", ind[4:]).t("\n  cert: /etc/ssl/site.crt")
        elif f == 3:
            r.t("$ cat ~/.ssh/id_ed25519\n").v("private_key", pem(PEM_KINDS[5])).t("\n$ ")
        elif f == 4:  # truncated in a log: runs to the end of the text
            k = pem()
            cut = k[:R.randint(len(k) // 3, len(k) - 40)]
            cut = cut.rstrip("\n-")
            r.t("%s ERROR bad key: " % ts()).v("private_key", cut)
        else:
            r.t("SSL_KEY=\"").v("private_key", pem(sep="\\n")).t("\"")
        add(r)
    negs = []
    for _ in range(20):
        negs += [(public_block("PUBLIC KEY"), "public key"),
                 (public_block("CERTIFICATE"), "certificate"),
                 (public_block("CERTIFICATE REQUEST"), "CSR"),
                 ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI%s deploy@ci" % b64u(R.randbytes(24)),
                  "SSH public key"),
                 (public_block("PGP PUBLIC KEY BLOCK"), "PGP public key"),
                 ("key id %s" % hexs(40), "key id")]
    for text, note in negs:
        add(Rec("private_key", "neg", note).t(text))


# ---- API keys -----------------------------------------------------------------------------------

def api_value():
    r = R.randint(0, 9)
    return [
        lambda: "sk_live_" + alnum(24),
        lambda: "sk_test_" + alnum(24),
        lambda: "ghp_" + alnum(36),
        lambda: "xoxb-%s-%s-%s" % (digits(12), digits(13), alnum(24)),
        lambda: hexs(32),
        lambda: base64.b64encode(R.randbytes(30)).decode(),
        lambda: alnum(R.randint(20, 48), string.ascii_letters + string.digits + "-_"),
        lambda: alnum(R.randint(16, 24), string.ascii_letters + string.digits + "!$%^*-_=+"),
        lambda: "AIza" + alnum(35, string.ascii_letters + string.digits + "-_"),
        lambda: uuid4(),
    ][r]()


API_FORMS = [('{{"api_key": "{v}"}}', None), ('{{"apiKey":"{v}","region":"eu"}}', None),
             ("API_KEY={v}", None), ("api_secret: {v}", None), ("X-Api-Key: {v}", None),
             ("GET /v1/items?api_key={v}&format=json", None), ("client_secret={v}", None),
             ("  password: '{v}'", None), ("DB_PASSWORD=\"{v}\"", None),
             ("export GITHUB_TOKEN={v}", None), ('"refresh_token": "{v}"', None),
             ("'secret' => '{v}',", None), ('stripe.api_key = "{v}"', None),
             ("SECRET_KEY = '{v}'", None), ("auth_token: {v}", None), ("pwd={v};", None),
             ("session_key={v} user=%s", "user"), ("  credentials: {v}", None),
             ("X-Auth-Key: {v}", None), ("private_key = \"{v}\"", None),
             ("%s INFO calling partner with access_key={v} ok", "ts")]


AWS_NAME = re.compile(r"(?i)(aws[_-]?)?secret[_-]?(access[_-]?)?key")
AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")


def gen_api():
    for _ in range(260):
        tpl, extra = pick(API_FORMS)
        if extra == "user":
            tpl = tpl % pick(FIRST)
        elif extra == "ts":
            tpl = tpl % ts()
        v = api_value()
        also = []
        if AWS_NAME.search(tpl) and AWS_SECRET.fullmatch(v):
            also = ["aws_key"]  # a 40-character secret after secret_key=: aws_key's rule too
        add(Rec("api_key", "pos", "API key").fmt(tpl, v=("api_key", v, also)))
    negs = []
    for _ in range(10):
        negs += [("password=%s" % pick(["hunter2", "secret", "letmein", "Passw0rd"]), "short"),
                 ("api_key: your-api-key-here", "placeholder"),
                 ('{"api_key": "<insert key>"}', "placeholder"),
                 ("API_KEY=changeme_changeme_123", "placeholder"),
                 ("token: null", "null"),
                 ('"token_type": "Bearer"', "token type"),
                 ('"expires_in": %d' % R.randint(60, 86400), "number"),
                 ('"tokens": %d' % R.randint(1000, 10 ** 7), "count"),
                 ("max_tokens=%d" % R.randint(256, 200000), "count"),
                 ("api_key_required: true", "boolean"),
                 ("secret_name: prod-db-credentials", "lowercase name"),
                 ("session_key_ttl=%d" % R.randint(60, 86400), "number"),
                 ("token_endpoint=https://login.example.com/oauth2/v2.0/token", "URL"),
                 ("password: ********", "already masked"),
                 ("secret: ${DB_SECRET}", "variable reference"),
                 ("api_key = os.environ['API_KEY']", "code"),
                 ("password_reset_sent_at: %s" % ts(), "timestamp"),
                 ('"secret_version": "%d"' % R.randint(1, 99), "version"),
                 ("token_count: %d, request id %s" % (R.randint(1, 5000), uuid4()), "count and uuid"),
                 ("--password-file /run/secrets/db_password", "file name"),
                 ("private_key_path: /etc/ssl/private/%s-%d.key" % (pick(WORDS), R.randint(2019, 2030)),
                  "file path"),
                 ("SECRET_FILE=/run/secrets/%s_secret_v%d" % (pick(WORDS), R.randint(1, 9)),
                  "file path"),
                 ("credentials_file: ~/.aws/credentials_%s%d" % (pick(FIRST), R.randint(1, 99)),
                  "file path"),
                 ('"SecretArn": "arn:aws:secretsmanager:eu-west-1:%s:secret:prod/%s-%s"' % (
                     digits(12), pick(WORDS), alnum(6)), "ARN"),
                 ("token_issuer_urn=urn:example:%s:%s" % (pick(WORDS), uuid4()), "URN")]
    for text, note in negs:
        add(Rec("api_key", "neg", note).t(text))


# ---- mixed lines and plain text ---------------------------------------------------------------

def gen_mixed():
    for i in range(150):
        r = Rec("mixed", "mixed", "JSON record" if i % 2 == 0 else "log line")
        if i % 2 == 0:
            r.t('{"id": %d, "uuid": "%s", "name": "%s", "email": "' % (R.randint(1, 10 ** 6),
                                                                        uuid4(), name()))
            r.v("email", email()).t('", "phone": "').v("phone", nanp() if R.random() < 0.5 else intl())
            r.t('", "card": "').v("credit_card", card_format(card_digits()))
            r.t('", "created_at": "%s", "ip": "' % ts()).v("ip_address", ipv4())
            r.t('", "version": "%d.%d.%d", "total": %d.%02d}' % (R.randint(1, 9), R.randint(0, 20),
                                                              R.randint(0, 99), R.randint(1, 999),
                                                              R.randint(0, 99)))
        else:
            r.t("%s INFO svc=%s req=%s " % (ts(), pick(WORDS), hexs(16)))
            r.t("ip=").v("ip_address", ipv4() if R.random() < 0.7 else ipv6())
            r.t(" user=").v("email", email())
            if R.random() < 0.5:
                r.t(" ssn=").v("us_ssn", "-".join(ssn_parts()))
            if R.random() < 0.5:
                r.t(" iban=").v("iban", iban_make(pick(sorted(IBAN_BBAN))))
            r.t(" status=%d took=%d.%dms order=ORD-%s" % (pick([200, 201, 404]), R.randint(0, 999),
                                                          R.randint(0, 9), digits(8)))
        add(r)
    for i in range(200):
        r = Rec("plain", "neg", "clean log / JSON / prose")
        f = i % 5
        if f == 0:
            r.t("%s INFO svc=%s req=%s status=%d bytes=%d took=%d.%dms path=/api/v1/%s/%d" % (
                ts(), pick(WORDS), hexs(8), pick([200, 304, 404, 500]), R.randint(0, 99999),
                R.randint(0, 999), R.randint(0, 9), pick(WORDS), R.randint(1, 99999)))
        elif f == 1:
            r.t('{"id": %d, "order": "ORD-%s", "sku": "AB-%s-XY", "qty": %d, "price": "%d.%02d",'
                ' "created_at": "%s", "trace": "%s"}' % (R.randint(1, 10 ** 9), digits(10),
                                                        digits(4), R.randint(1, 99),
                                                        R.randint(1, 9999), R.randint(0, 99), ts(),
                                                        uuid4()))
        elif f == 2:
            r.t("commit %s Merge pull request #%d from %s/%s (v%d.%d.%d)" % (
                hexs(40), R.randint(1, 99999), pick(FIRST), pick(WORDS), R.randint(0, 9),
                R.randint(0, 30), R.randint(0, 99)))
        elif f == 3:
            r.t("In %d, %d of the %d orders (%d%%) shipped within %d days; the median basket "
                "was EUR %d,%02d and %s." % (R.randint(1990, 2030), R.randint(1, 9999),
                                              R.randint(10000, 99999), R.randint(1, 99),
                                              R.randint(1, 30), R.randint(1, 999), R.randint(0, 99),
                                              " ".join(pick(WORDS) for _ in range(6))))
        else:
            r.t("sha256:%s  %s-%d.%d.%d.tar.gz  %d bytes  %s" % (
                hexs(64), pick(WORDS), R.randint(0, 9), R.randint(0, 30), R.randint(0, 99),
                R.randint(1000, 10 ** 8), date()))
        add(r)


def build():
    gen_cards()
    gen_ssn()
    gen_email()
    gen_phone()
    gen_iban()
    gen_ip()
    gen_jwt()
    gen_aws()
    gen_pem()
    gen_api()
    gen_mixed()
    out, counts = [], {}
    for r in RECORDS:
        k = (r.group, r.kind)
        counts[k] = counts.get(k, 0) + 1
        rid = "%s/%s/%04d" % (r.group, r.kind, counts[k])
        text = r.buf.decode()
        for sp in r.spans:
            assert 0 <= sp["start"] < sp["end"] <= len(r.buf)
        obj = {"id": rid, "group": r.group, "kind": r.kind, "note": r.note, "text": text,
               "spans": r.spans}
        out.append(json.dumps(obj, separators=(",", ":")))
    return "\n".join(out) + "\n"


def main():
    data = build()
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        with open(OUT, encoding="utf-8") as f:
            if f.read() != data:
                sys.exit("corpus.jsonl is stale: run tests/data/masking/gen_corpus.py")
        print("corpus.jsonl is up to date (%d records)" % data.count("\n"))
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(data)
    print("wrote %s: %d records" % (OUT, data.count("\n")))


if __name__ == "__main__":
    main()
