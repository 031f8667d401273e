"""`builtin:math`: a seeded generator of arithmetic and algebra problems with worked answers.

One problem = one document, written as "Question: ...\nAnswer: <steps> The answer is X." Kinds, drawn
in rotation so every kind is present in any prefix: column arithmetic, multiplication by place
value, order of operations, fraction sums, linear equations, and word problems (shopping, speed,
percentages, sharing). Same seed and count, same problems, on any Python.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

DEFAULT_COUNT = 4000


def _add_sub(r: random.Random) -> str:
    a, b = r.randint(10, 9999), r.randint(10, 9999)
    if r.random() < 0.5:
        return f"Question: What is {a} + {b}?\nAnswer: {a} + {b} = {a + b}. The answer is {a + b}."
    a, b = max(a, b), min(a, b)
    return f"Question: What is {a} - {b}?\nAnswer: {a} - {b} = {a - b}. The answer is {a - b}."


def _multiply(r: random.Random) -> str:
    a, b = r.randint(11, 99), r.randint(11, 99)
    tens, ones = b - b % 10, b % 10
    return (
        f"Question: Compute {a} * {b}.\nAnswer: Split {b} into {tens} + {ones}. "
        f"{a} * {tens} = {a * tens} and {a} * {ones} = {a * ones}. "
        f"{a * tens} + {a * ones} = {a * b}. The answer is {a * b}."
    )


def _order_of_operations(r: random.Random) -> str:
    a, b, c, d = (r.randint(2, 20) for _ in range(4))
    inner = a + b if r.random() < 0.5 else max(a, b) - min(a, b)
    op = "+" if inner == a + b else "-"
    x, y = (a, b) if op == "+" else (max(a, b), min(a, b))
    total = inner * c - d
    return (
        f"Question: Simplify ({x} {op} {y}) * {c} - {d}.\nAnswer: Parentheses first: {x} {op} {y} = {inner}. "
        f"Then multiply: {inner} * {c} = {inner * c}. Then subtract: {inner * c} - {d} = {total}. The answer is {total}."
    )


def _fractions(r: random.Random) -> str:
    p, q = Fraction(r.randint(1, 9), r.randint(2, 12)), Fraction(r.randint(1, 9), r.randint(2, 12))
    common = p.denominator * q.denominator // _gcd(p.denominator, q.denominator)
    pn, qn = p.numerator * (common // p.denominator), q.numerator * (common // q.denominator)
    total = p + q
    return (
        f"Question: Add {p.numerator}/{p.denominator} and {q.numerator}/{q.denominator}.\n"
        f"Answer: The common denominator is {common}: {pn}/{common} + {qn}/{common} = {pn + qn}/{common}, "
        f"which simplifies to {total.numerator}/{total.denominator}. The answer is {total.numerator}/{total.denominator}."
    )


def _linear(r: random.Random) -> str:
    a, x, b = r.randint(2, 12), r.randint(-20, 20), r.randint(-50, 50)
    c = a * x + b
    sign, mag = ("+", b) if b >= 0 else ("-", -b)
    move = f"subtract {b} from both sides" if b >= 0 else f"add {-b} to both sides"
    return (
        f"Question: Solve {a}x {sign} {mag} = {c}.\nAnswer: First {move}: {a}x = {c - b}. "
        f"Then divide by {a}: x = {x}. The answer is x = {x}."
    )


_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun")
_ITEMS = ("apples", "pencils", "notebooks", "oranges", "tickets", "stamps")


def _word(r: random.Random) -> str:
    name, item = r.choice(_NAMES), r.choice(_ITEMS)
    kind = r.randrange(4)
    if kind == 0:
        n, price = r.randint(2, 15), r.randint(1, 9)
        paid = (n * price // 10 + 1) * 10
        return (
            f"Question: {name} buys {n} {item} at {price} dollars each and pays with {paid} dollars. "
            f"How much change does {name} get?\nAnswer: The {item} cost {n} * {price} = {n * price} dollars. "
            f"The change is {paid} - {n * price} = {paid - n * price} dollars. The answer is {paid - n * price}."
        )
    if kind == 1:
        speed, hours = r.randint(30, 120), r.randint(2, 9)
        return (
            f"Question: A train travels at {speed} km per hour for {hours} hours. How far does it go?\n"
            f"Answer: Distance = speed * time = {speed} * {hours} = {speed * hours} km. The answer is {speed * hours} km."
        )
    if kind == 2:
        whole, pct = r.randint(2, 40) * 10, r.choice((10, 20, 25, 50, 75))
        part = whole * pct // 100
        return (
            f"Question: What is {pct}% of {whole}?\nAnswer: {pct}% means {pct}/100, so {whole} * {pct} / 100 = {part}. "
            f"The answer is {part}."
        )
    friends, each = r.randint(2, 9), r.randint(2, 12)
    total = friends * each + r.randint(0, friends - 1)
    left = total % friends
    return (
        f"Question: {name} shares {total} {item} equally among {friends} friends. How many does each friend get, "
        f"and how many are left over?\nAnswer: {total} / {friends} = {total // friends} remainder {left}, since "
        f"{friends} * {total // friends} = {friends * (total // friends)}. Each gets {total // friends} and {left} are "
        f"left. The answer is {total // friends} each, {left} left over."
    )


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


KINDS: tuple[Callable[[random.Random], str], ...] = (_add_sub, _multiply, _order_of_operations, _fractions, _linear, _word)


def math_texts(seed: int = 0, count: int = DEFAULT_COUNT) -> list[str]:
    r = random.Random(f"emo-prune builtin:math {seed}")
    return [KINDS[i % len(KINDS)](r) for i in range(count)]
