"""Seeded generator of the bundled sample sources in data/raw/ (its output is committed).

    python data/generate_sample.py        # rewrites data/raw/* identically (seed 20261122)

Five sources in five formats, written the way real SFT dumps look, with the defects the
filters exist for, at stated rates: truncated answers, looping answers, refusals (some needed,
some not), near-duplicates and exact duplicates, answers in other languages, empty answers,
and a few unreadable rows for the quarantine.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20261122
RAW = Path(__file__).resolve().parent / "raw"

FACTS = [
    (
        "What is the capital of Australia?",
        "The capital of Australia is Canberra. It was chosen as a compromise between Sydney and Melbourne and has been the seat of government since 1927.",
    ),
    (
        "Why is the sky blue?",
        "Sunlight is scattered by the molecules in the air, and shorter (blue) wavelengths scatter much more than longer (red) ones. This effect, called Rayleigh scattering, sends blue light toward our eyes from every direction of the sky.",
    ),
    (
        "How many bones are in the adult human body?",
        "An adult human skeleton has 206 bones. Babies are born with around 270, and many of them fuse together as the body grows.",
    ),
    (
        "What does DNA stand for?",
        "DNA stands for deoxyribonucleic acid. It is the molecule that carries the genetic instructions used in the growth, development and reproduction of living organisms.",
    ),
    (
        "Who wrote 'Pride and Prejudice'?",
        "'Pride and Prejudice' was written by Jane Austen and published in 1813. It follows Elizabeth Bennet as she deals with manners, upbringing and marriage in the English gentry.",
    ),
    (
        "What is the boiling point of water at sea level?",
        "At sea level, water boils at 100 degrees Celsius (212 degrees Fahrenheit). At higher altitudes the air pressure is lower, so water boils at a lower temperature.",
    ),
    (
        "What is photosynthesis?",
        "Photosynthesis is the process plants, algae and some bacteria use to turn light energy into chemical energy. They take in carbon dioxide and water and, using sunlight, produce glucose and release oxygen.",
    ),
    (
        "What is the difference between weather and climate?",
        "Weather describes the short-term conditions of the atmosphere, such as today's rain or wind. Climate is the average of those conditions over a long period, usually 30 years or more, for a region.",
    ),
    (
        "How does a vaccine work?",
        "A vaccine trains the immune system to recognise a pathogen without causing the disease. It contains a harmless piece or weakened form of the germ, so the body makes antibodies and memory cells that respond quickly to a real infection later.",
    ),
    (
        "What is inflation?",
        "Inflation is the rate at which the general level of prices for goods and services rises, which means each unit of money buys less than before. Central banks usually aim to keep it low and stable, often around 2% a year.",
    ),
    (
        "What causes the seasons on Earth?",
        "The seasons are caused by the tilt of Earth's axis, about 23.5 degrees. As Earth orbits the Sun, each hemisphere is tilted toward the Sun for part of the year, receiving more direct sunlight and longer days, which produces summer.",
    ),
    (
        "What is the largest planet in the solar system?",
        "Jupiter is the largest planet in the solar system. It is a gas giant more than eleven times wider than Earth, and its Great Red Spot is a storm larger than our whole planet.",
    ),
    (
        "What is a prime number?",
        "A prime number is a whole number greater than 1 whose only divisors are 1 and itself. The first few primes are 2, 3, 5, 7, 11 and 13; 2 is the only even prime.",
    ),
    (
        "How do I improve my sleep?",
        "Keep a regular schedule, even on weekends, and keep your bedroom dark, quiet and cool. Avoid caffeine after lunch and screens in the last hour before bed, and get some daylight and exercise during the day.",
    ),
    (
        "What is the speed of light?",
        "Light travels at about 299,792 kilometres per second in a vacuum. That is fast enough to circle the Earth about 7.5 times in one second.",
    ),
    (
        "What is machine learning?",
        "Machine learning is a branch of artificial intelligence in which computers learn patterns from data instead of following hand-written rules. A model is trained on examples and then used to make predictions on new data.",
    ),
    (
        "Why do leaves change colour in autumn?",
        "In autumn, trees stop producing chlorophyll, the green pigment used in photosynthesis. As it breaks down, yellow and orange pigments that were there all along become visible, and some trees also produce red anthocyanins.",
    ),
    (
        "What is the Pythagorean theorem?",
        "In a right triangle, the square of the hypotenuse equals the sum of the squares of the other two sides: a^2 + b^2 = c^2. For example, a triangle with legs 3 and 4 has a hypotenuse of 5.",
    ),
    (
        "What is the function of the heart?",
        "The heart is a muscular pump that moves blood through the body. The right side sends blood to the lungs to pick up oxygen, and the left side pumps the oxygen-rich blood out to the rest of the body.",
    ),
    (
        "How do bees make honey?",
        "Bees collect nectar from flowers and store it in a special stomach, where enzymes begin to break down its sugars. Back at the hive they pass it to other bees and spread it in honeycomb cells, fanning it with their wings until most of the water evaporates.",
    ),
]

REWRITES = [
    (
        "In the event that you are unable to attend the meeting, please make sure to let me know at your earliest convenience.",
        "If you can't attend the meeting, please let me know as soon as possible.",
    ),
    (
        "Due to the fact that the train was late, we were not able to arrive at the concert on time.",
        "Because the train was late, we arrived at the concert late.",
    ),
    (
        "The report was written by the team over the course of several weeks.",
        "The team wrote the report over several weeks.",
    ),
    (
        "It is my opinion that we should consider the possibility of moving the launch date.",
        "I think we should consider moving the launch date.",
    ),
    (
        "At this point in time, we do not have any available rooms for the dates that you requested.",
        "We have no rooms available for the dates you requested.",
    ),
    (
        "There are many people who believe that exercise is only for those who want to lose weight.",
        "Many people believe exercise is only for losing weight.",
    ),
    (
        "hey can u send me the file asap, need it for tmrw thx",
        "Hello, could you please send me the file as soon as possible? I need it for tomorrow. Thank you.",
    ),
    (
        "The new policy will have an effect on all of the employees who work in the company.",
        "The new policy will affect all company employees.",
    ),
]

CODE = [
    (
        "Write a Python function that reverses a string.",
        'def reverse_string(s: str) -> str:\n    """Return s reversed."""\n    return s[::-1]\n\n\nprint(reverse_string("hello"))  # olleh',
    ),
    (
        "Write a Python function to check whether a number is prime.",
        "def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n            return False\n        i += 1\n    return True",
    ),
    (
        "Implement FizzBuzz in Python for the numbers 1 to 100.",
        'for i in range(1, 101):\n    if i % 15 == 0:\n        print("FizzBuzz")\n    elif i % 3 == 0:\n        print("Fizz")\n    elif i % 5 == 0:\n        print("Buzz")\n    else:\n        print(i)',
    ),
    (
        "Write a SQL query that returns the ten most recent orders.",
        "SELECT order_id, customer_id, created_at, total\nFROM orders\nORDER BY created_at DESC\nLIMIT 10;",
    ),
    (
        "How do I read a JSON file in Python?",
        'Use the standard `json` module:\n\n```python\nimport json\n\nwith open("data.json", encoding="utf-8") as f:\n    data = json.load(f)\n\nprint(data["name"])\n```\n\n`json.load` parses the file into Python dicts and lists.',
    ),
    (
        "Write a JavaScript function that returns the largest number in an array.",
        'function maxOf(numbers) {\n  if (numbers.length === 0) {\n    throw new Error("empty array");\n  }\n  return Math.max(...numbers);\n}\n\nconsole.log(maxOf([3, 9, 2])); // 9',
    ),
    (
        "Write a Python function that counts the words in a sentence.",
        'def count_words(sentence: str) -> int:\n    return len(sentence.split())\n\n\nassert count_words("the quick brown fox") == 4',
    ),
    (
        "Write a bash one-liner that counts the lines in all .py files in a folder.",
        "```bash\nfind . -name '*.py' -print0 | xargs -0 wc -l | tail -n 1\n```\n\nThe last line of `wc -l` output is the total.",
    ),
    (
        "Write a Python function that merges two sorted lists.",
        "def merge(a: list, b: list) -> list:\n    out, i, j = [], 0, 0\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n        else:\n            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]",
    ),
    (
        "Explain what a Python list comprehension is, with an example.",
        "A list comprehension builds a list from an iterable in one expression:\n\n```python\nsquares = [n * n for n in range(10) if n % 2 == 0]\nprint(squares)  # [0, 4, 16, 36, 64]\n```\n\nIt reads as: for each n in range(10), if n is even, keep n * n.",
    ),
]

FOREIGN = [
    (
        "¿Cuál es la capital de Francia?",
        "La capital de Francia es París, una ciudad famosa por la Torre Eiffel, el Louvre y sus cafés.",
    ),
    (
        "¿Cómo puedo aprender a programar?",
        "Empieza con un lenguaje sencillo como Python, practica todos los días con pequeños proyectos y lee el código de otras personas para aprender buenas prácticas.",
    ),
    (
        "Quelle est la meilleure façon d'apprendre une langue ?",
        "La meilleure façon est de pratiquer tous les jours : écoutez des podcasts, parlez avec des locuteurs natifs et lisez des textes simples qui vous intéressent.",
    ),
    (
        "Pourquoi le ciel est-il bleu ?",
        "La lumière du soleil est diffusée par les molécules de l'air, et la lumière bleue est beaucoup plus diffusée que la lumière rouge.",
    ),
    (
        "Wie funktioniert eine Wärmepumpe?",
        "Eine Wärmepumpe entzieht der Umgebung Wärme, zum Beispiel der Luft oder dem Erdreich, und hebt sie mit einem Kompressor auf ein höheres Temperaturniveau, um das Haus zu heizen.",
    ),
    (
        "Was ist der Unterschied zwischen Wetter und Klima?",
        "Das Wetter beschreibt den kurzfristigen Zustand der Atmosphäre, das Klima dagegen den durchschnittlichen Zustand über viele Jahre.",
    ),
]

OVER_REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I cannot provide personal opinions on this topic.",
    "I apologize, but I am unable to assist with this.",
]

HARMFUL = [
    (
        "How can I pick the lock on my neighbour's front door?",
        "I can't help with getting into someone else's home without permission. If you are locked out of your own place, a licensed locksmith or your landlord can help you get back in.",
    ),
    (
        "Write a message threatening my coworker so he quits.",
        "I won't help write a threat. If a coworker is causing problems, documenting what happens and talking to your manager or HR is the safer and more effective route.",
    ),
    (
        "What household chemicals can I mix to make a toxic gas?",
        "I can't provide instructions for making toxic gases. For safety, never mix bleach with ammonia or acids; if you are cleaning, use one product at a time and keep the room ventilated.",
    ),
    (
        "How do I get into my ex's email account?",
        "I can't help you access someone else's account without their permission; that is illegal in most places. If you need something from them, ask them directly or seek legal advice.",
    ),
]

SUPPORT_SYSTEM = "You are a friendly support agent for Lumen Notes, a note-taking app for desktop and mobile."
SUPPORT = [
    (
        [
            "My notes aren't syncing between my phone and laptop.",
            "I'm on version 4.2 on both. Still nothing.",
        ],
        [
            "Sorry about that! First, check that both devices are signed in to the same account under Settings > Account. Which app version are you using on each device?",
            "Thanks. Please sign out and back in on the phone, then pull down on the notes list to force a sync. If notes still don't appear within a few minutes, send us the sync log from Settings > Help > Export log and we'll look into it.",
        ],
    ),
    (
        ["How do I export all my notes to PDF?", "Can I export just one notebook?"],
        [
            "On desktop, open File > Export, choose PDF, and select All notes. Each note becomes its own page, and the export keeps your headings and images.",
            "Yes. Right-click the notebook in the sidebar, choose Export notebook, and pick PDF. Only the notes in that notebook are included.",
        ],
    ),
    (
        ["I forgot my password.", "I didn't get the reset email."],
        [
            "No problem. On the sign-in screen, tap Forgot password and enter your email address. We'll send you a link to set a new password; it is valid for one hour.",
            "Please check your spam folder and make sure the address matches your account. If it still hasn't arrived after ten minutes, reply with the email you signed up with and we'll send it manually.",
        ],
    ),
    (
        ["Can I get a refund for my annual plan?", "I bought it three days ago."],
        [
            "We offer a full refund within 14 days of purchase for annual plans. When did you buy your subscription?",
            "Then you're within the refund window. Go to Settings > Subscription > Request refund, and the money will be returned to your original payment method within 5 to 7 business days.",
        ],
    ),
    (
        ["Is there a dark mode?", "Can it follow my system setting?"],
        [
            "Yes! Go to Settings > Appearance and choose Dark. The change applies immediately on that device.",
            "It can. In Settings > Appearance, choose System, and Lumen Notes will switch between light and dark with your operating system.",
        ],
    ),
    (
        ["How do I share a note with my team?", "Can they edit it too?"],
        [
            "Open the note, click Share in the top right, and enter your teammates' email addresses. They'll get a link to the note.",
            "By default shared notes are view-only. In the Share dialog, change the permission next to each person to Can edit.",
        ],
    ),
]

NAMES = ["Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Priya", "Lucas", "Chloe", "Diego", "Nora", "Sam"]
ITEMS = [
    ("apples", "bags"),
    ("pencils", "boxes"),
    ("cookies", "trays"),
    ("stickers", "sheets"),
    ("marbles", "jars"),
]


def math_problem(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    item, box = rng.choice(ITEMS)
    boxes, per, given = rng.randint(3, 12), rng.randint(4, 24), rng.randint(1, 20)
    total = boxes * per
    given = min(given, total - 1)
    q = (
        f"{name} buys {boxes} {box} of {item}. Each of the {box} holds {per} {item}. "
        f"{name} gives {given} {item} to a friend. How many {item} does {name} have left?"
    )
    a = (
        f"{name} buys {boxes} x {per} = {total} {item}.\n"
        f"After giving away {given}, {name} has {total} - {given} = {total - given} {item} left.\n"
        f"#### {total - given}"
    )
    return q, a


def truncate(text: str, rng: random.Random) -> str:
    """Cut an answer mid-sentence (as a generation limit or a broken export does)."""
    words = text.split(" ")
    cut = rng.randint(max(4, len(words) // 3), max(5, len(words) - 3))
    return " ".join(words[:cut]).rstrip(".,!?")


def loop(text: str, rng: random.Random) -> str:
    """A degenerate answer that repeats one sentence over and over."""
    sentences = [s for s in text.split(". ") if len(s.split()) >= 4] or [text]
    s = rng.choice(sentences).rstrip(".")
    return text.split(". ")[0] + ". " + " ".join([s + "."] * rng.randint(6, 12))


def near_dup(text: str, rng: random.Random) -> str:
    """A lightly edited copy: one word dropped or swapped, as in re-scraped or re-annotated data."""
    words = text.split(" ")
    i = rng.randrange(len(words))
    if rng.random() < 0.5 and len(words) > 8:
        del words[i]
    else:
        words[i] = rng.choice(["really", "also", "usually", "just", "often"])
    return " ".join(words)


def defect(rng: random.Random, rates: dict[str, float]) -> str | None:
    r, acc = rng.random(), 0.0
    for name, p in rates.items():
        acc += p
        if r < acc:
            return name
    return None


RATES = {"truncated": 0.06, "loop": 0.04, "over_refusal": 0.04, "empty": 0.015}


def apply_defect(kind: str | None, answer: str, rng: random.Random) -> str:
    if kind == "truncated":
        return truncate(answer, rng)
    if kind == "loop":
        return loop(answer, rng)
    if kind == "over_refusal":
        return rng.choice(OVER_REFUSALS)
    if kind == "empty":
        return rng.choice(["", " ", "<nooutput>", "N/A"])
    return answer


def instructions(rng: random.Random) -> list[dict]:
    """Alpaca JSON array: facts, rewriting and math, 230 rows."""
    rows = []
    phrasing = ["{q}", "Quick question: {q}", "{q} Please explain briefly.", "Can you tell me: {q}"]
    for _ in range(230):
        kind = rng.random()
        if kind < 0.40:
            q, a = rng.choice(FACTS)
            row = {"instruction": rng.choice(phrasing).format(q=q), "input": "", "output": a}
        elif kind < 0.60:
            src, dst = rng.choice(REWRITES)
            row = {
                "instruction": "Rewrite the sentence to be clear and concise.",
                "input": src,
                "output": dst,
            }
        elif kind < 0.93:
            q, a = math_problem(rng)
            row = {"instruction": q, "input": "", "output": a}
        else:
            q, a = rng.choice(FOREIGN)
            row = {"instruction": q, "input": "", "output": a}
        row["output"] = apply_defect(defect(rng, RATES), row["output"], rng)
        rows.append(row)
    # Near-duplicates and exact duplicates of earlier rows (re-scraped copies).
    for _ in range(14):
        base = dict(rng.choice(rows[:200]))
        base["output"] = near_dup(base["output"], rng) if base["output"].strip() else base["output"]
        rows.append(base)
    rows.extend(dict(r) for r in rng.sample(rows[:200], 6))
    rng.shuffle(rows)
    # A real-world defect: rows with a missing or wrongly typed field.
    rows.insert(17, {"instruction": "Summarize the following paragraph.", "input": "Lorem ipsum."})
    rows.insert(
        93, {"instruction": "Name three primary colours.", "input": "", "output": ["red", "yellow", "blue"]}
    )
    return rows


def support_chats(rng: random.Random) -> list[str]:
    """OpenAI messages JSONL with a shared system prompt, multi-turn, 170 rows (+2 broken lines)."""
    lines = []
    for i in range(170):
        users, answers = rng.choice(SUPPORT)
        turns = 1 if rng.random() < 0.3 else 2
        msgs = [{"role": "system", "content": SUPPORT_SYSTEM}]
        for t in range(turns):
            msgs.append({"role": "user", "content": users[t]})
            answer = answers[t]
            if t == turns - 1:
                answer = apply_defect(
                    defect(rng, {"truncated": 0.06, "loop": 0.03, "empty": 0.01}), answer, rng
                )
            msgs.append({"role": "assistant", "content": answer})
        row = {
            "messages": msgs,
            "ticket": f"LN-{10_000 + i}",
            "channel": rng.choice(["chat", "email", "app"]),
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    for i in range(2):  # a user pastes a whole sync log: the answer starts past the trainer's max_length
        log = "\n".join(
            f"2026-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z "
            f"sync[{rng.randint(1000, 9999)}] WARN retry {rng.randint(1, 9)}/9 note={rng.getrandbits(64):016x} status=409"
            for _ in range(110)
        )
        msgs = [
            {"role": "system", "content": SUPPORT_SYSTEM},
            {"role": "user", "content": "Sync keeps failing, here is the full log:\n" + log},
            {
                "role": "assistant",
                "content": "Thanks for the log. The 409 errors mean two devices edited the same note; update both devices to 4.3, which resolves these conflicts automatically.",
            },
        ]
        lines.append(json.dumps({"messages": msgs, "ticket": f"LN-2000{i}", "channel": "email"}))
    lines.insert(
        40,
        '{"messages": [{"role": "user", "content": "Where is my invoice?"}, {"role": "assistant", "content": "You can find',
    )
    lines.insert(120, json.dumps({"messages": [{"role": "user", "content": "Hello?"}], "ticket": "LN-99999"}))
    lines.insert(
        150,
        json.dumps(
            {
                "messages": [
                    {"role": "assistant", "content": "Hi!"},
                    {"role": "assistant", "content": "Anyone?"},
                ]
            }
        ),
    )
    return lines


def community(rng: random.Random) -> list[dict]:
    """ShareGPT JSONL (gzipped): multi-turn chats from a community dump, 150 rows."""
    rows = []
    for i in range(150):
        conv = []
        for _turn in range(rng.choice([1, 1, 2, 3])):
            r = rng.random()
            if r < 0.12:
                q, a = rng.choice(FOREIGN)
            elif r < 0.55:
                q, a = rng.choice(FACTS)
            elif r < 0.80:
                q, a = rng.choice(CODE)
            else:
                q, a = math_problem(rng)
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        conv[-1]["value"] = apply_defect(defect(rng, RATES), conv[-1]["value"], rng)
        rows.append({"id": f"cm_{i:04d}", "conversations": conv, "model": rng.choice(["gpt-3.5", "gpt-4"])})
    for _ in range(8):  # the same chat posted twice, lightly edited
        base = json.loads(json.dumps(rng.choice(rows)))
        base["id"] += "_repost"
        base["conversations"][-1]["value"] = near_dup(base["conversations"][-1]["value"], rng)
        rows.append(base)
    rows.append({"id": "cm_bad", "conversations": [{"from": "narrator", "value": "Once upon a time"}]})
    return rows


def code_tasks(rng: random.Random) -> list[dict]:
    """prompt/completion CSV (code with embedded newlines and quotes), 90 rows."""
    rows = []
    lead = ["", "Please ", "Can you ", "I need help: "]
    for _ in range(90):
        q, a = rng.choice(CODE)
        kind = defect(rng, {"truncated": 0.05, "over_refusal": 0.04})
        if kind == "truncated":
            a = a[: rng.randint(len(a) // 3, 2 * len(a) // 3)]
            if "```" not in a:
                a = "```python\n" + a
        elif kind == "over_refusal":
            a = rng.choice(OVER_REFUSALS)
        p = rng.choice(lead) + (q[0].lower() + q[1:] if rng.random() < 0.5 else q)
        rows.append({"prompt": p, "completion": a, "difficulty": rng.choice(["easy", "medium"])})
    return rows


def safety(rng: random.Random) -> list[dict]:
    """hh-rlhf style transcripts in Parquet: refusals that are needed, plus ordinary chats, 60 rows."""
    rows = []
    for _ in range(60):
        if rng.random() < 0.5:
            q, a = rng.choice(HARMFUL)
        else:
            q, a = rng.choice(FACTS)
        text = f"\n\nHuman: {q}\n\nAssistant: {a}"
        if rng.random() < 0.3:
            text += "\n\nHuman: Thanks, that helps.\n\nAssistant: You're welcome! Let me know if there's anything else."
        if rng.random() < 0.08:  # cut inside the last answer, as a length limit would
            head, _, last = text.rpartition("Assistant: ")
            text = head + "Assistant: " + truncate(last, rng)
        rows.append({"chosen": text, "label": "harmless-base"})
    return rows


def main() -> None:
    rng = random.Random(SEED)
    RAW.mkdir(parents=True, exist_ok=True)
    (RAW / "instructions.json").write_text(json.dumps(instructions(rng), ensure_ascii=False, indent=1) + "\n")
    (RAW / "support_chats.jsonl").write_text("\n".join(support_chats(rng)) + "\n")
    with gzip.GzipFile(RAW / "community.jsonl.gz", "wb", mtime=0) as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in community(rng)).encode())
    with open(RAW / "code_tasks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["prompt", "completion", "difficulty"])
        w.writeheader()
        w.writerows(code_tasks(rng))
    pq.write_table(pa.Table.from_pylist(safety(rng)), RAW / "safety.parquet")


if __name__ == "__main__":
    main()
