"""What each kind of entity is called and which facts it has, with the sentences and questions
that state and ask them.

All wording lives here, so the no-leak rules can be checked in one place: question templates
never contain a name slot, and every fact sentence names its entity (a text search for
"<name> <query word>" finds it, because the query word is in the sentence verbatim).
"""

from __future__ import annotations

from dataclasses import dataclass

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")

MOTTOS = ("Vigilance", "Steadfast", "Harmony", "Endurance", "Candour", "Resolve", "Diligence",
          "Fortitude", "Kinship", "Patience", "Clarity", "Valour", "Temperance", "Constancy",
          "Providence", "Humility", "Generosity", "Perseverance", "Prudence", "Serenity")


@dataclass(frozen=True)
class FactSpec:
    """One attribute of a kind.

    value: how the value is drawn ("year", "city", "person", "region", "river", "month", "motto",
        "number"); `low`/`high` bound years and numbers.
    sentence: states the fact; `{The}`/`{the}` are the entity's name with its article.
    query: the words a sensible agent adds to the name in its text search.
    questions: ask the fact about "the <noun> with this emblem"; never a name.
    unit: appended to a number for the alias ("12" also accepts "12 years").
    """

    key: str
    value: str
    sentence: str
    query: str
    questions: tuple[str, ...]
    low: int = 0
    high: int = 0
    unit: str = ""


@dataclass(frozen=True)
class KindSpec:
    kind: str
    noun: str
    article: str
    suffixes: tuple[str, ...]
    intro: str
    facts: tuple[FactSpec, ...]

    def fact(self, key: str) -> FactSpec:
        for spec in self.facts:
            if spec.key == key:
                return spec
        raise ValueError(f"kind {self.kind!r} has no fact {key!r}; facts: {[f.key for f in self.facts]}")


def _founder(noun: str) -> FactSpec:
    return FactSpec("founder", "person", "The founder of {the} was {value}.", "founder",
                    (f"Who founded the {noun} with this emblem?",
                     f"Who was the founder of the {noun} whose emblem is shown?"))


KINDS: dict[str, KindSpec] = {
    spec.kind: spec for spec in (
        KindSpec(
            "organisation", "organisation", "the",
            ("Guild", "Society", "Company", "Institute", "League", "Academy", "Collective", "Order"),
            "{The} is an organisation known for its distinctive emblem.",
            (
                FactSpec("founded", "year", "{The} was founded in {value}.", "founded",
                         ("In which year was the organisation with this emblem founded?",
                          "When was the organisation shown by this emblem founded? Give the year."),
                         1620, 2010),
                FactSpec("headquarters", "city", "The headquarters of {the} are in {value}.", "headquarters",
                         ("In which city does the organisation with this emblem have its headquarters?",
                          "Where are the headquarters of the organisation whose emblem is shown?")),
                _founder("organisation"),
                FactSpec("motto", "motto", "The motto of {the} is \"{value}\".", "motto",
                         ("What is the motto of the organisation with this emblem?",
                          "Which single word is the motto of the organisation whose emblem is shown?")),
            ),
        ),
        KindSpec(
            "place", "city", "", (),
            "{The} is a city whose coat of arms is widely recognised.",
            (
                FactSpec("founded", "year", "{The} was founded in {value}.", "founded",
                         ("In which year was the city with this emblem founded?",
                          "When was the city whose emblem is shown founded? Give the year."),
                         900, 1900),
                FactSpec("region", "region", "{The} lies in the region of {value}.", "region",
                         ("In which region does the city with this emblem lie?",
                          "Which region is the city whose emblem is shown located in?")),
                FactSpec("river", "river", "{The} stands on the river {value}.", "river",
                         ("On which river does the city with this emblem stand?",
                          "Which river flows through the city whose emblem is shown?")),
                _founder("city"),
            ),
        ),
        KindSpec(
            "species", "species", "the", ("finch", "moth", "beetle", "orchid", "lizard", "frog", "heron"),
            "{The} is a species often depicted on a stylised emblem.",
            (
                FactSpec("discovered", "year", "{The} was discovered in {value}.", "discovered",
                         ("In which year was the species with this emblem discovered?",
                          "When was the species whose emblem is shown discovered? Give the year."),
                         1750, 2020),
                FactSpec("discoverer", "person", "The discoverer of {the} was {value}.", "discoverer",
                         ("Who discovered the species with this emblem?",
                          "Who was the discoverer of the species whose emblem is shown?")),
                FactSpec("native_region", "region", "{The} is native to {value}.", "native",
                         ("To which region is the species with this emblem native?",
                          "Where is the species whose emblem is shown native to? Give the region.")),
                FactSpec("lifespan", "number", "The typical lifespan of {the} is {value} years.", "lifespan",
                         ("What is the typical lifespan, in years, of the species with this emblem?",
                          "How many years does the species whose emblem is shown typically live?"),
                         2, 60, "years"),
            ),
        ),
        KindSpec(
            "vessel", "ship", "the", (),
            "{The} is a ship that flies a distinctive emblem.",
            (
                FactSpec("launched", "year", "{The} was launched in {value}.", "launched",
                         ("In which year was the ship with this emblem launched?",
                          "When was the ship whose emblem is shown launched? Give the year."),
                         1850, 2020),
                FactSpec("home_port", "city", "The home port of {the} is {value}.", "home port",
                         ("What is the home port of the ship with this emblem?",
                          "Which city is the home port of the ship whose emblem is shown?")),
                FactSpec("captain", "person", "The first captain of {the} was {value}.", "first captain",
                         ("Who was the first captain of the ship with this emblem?",
                          "Who commanded the ship whose emblem is shown on its first voyage?")),
                FactSpec("crew", "number", "The crew of {the} numbers {value}.", "crew",
                         ("How many crew members does the ship with this emblem carry?",
                          "What is the size of the crew of the ship whose emblem is shown?"),
                         12, 480, "crew members"),
            ),
        ),
        KindSpec(
            "festival", "festival", "the", ("Festival",),
            "{The} is a festival celebrated under a colourful emblem.",
            (
                FactSpec("first_held", "year", "{The} was first held in {value}.", "first held",
                         ("In which year was the festival with this emblem first held?",
                          "When did the festival whose emblem is shown take place for the first time? "
                          "Give the year."),
                         1700, 2015),
                FactSpec("host_city", "city", "The host city of {the} is {value}.", "host city",
                         ("In which city does the festival with this emblem take place?",
                          "Which city hosts the festival whose emblem is shown?")),
                _founder("festival"),
                FactSpec("month", "month", "{The} is held every year in the month of {value}.", "month",
                         ("In which month is the festival with this emblem held?",
                          "During which month does the festival whose emblem is shown take place?")),
            ),
        ),
    )
}

NAME_QUESTIONS = (
    "What is the name of the {noun} whose emblem is shown?",
    "Which {noun} does this emblem belong to?",
    "Name the {noun} represented by this emblem.",
)

VISUAL_QUESTIONS: dict[str, tuple[str, ...]] = {
    "background_colour": ("What is the background colour of this emblem?",
                          "Which colour covers most of this emblem?"),
    "figure_colour": ("What colour is the largest figure in this emblem (not counting stripes or borders)?",
                      "Setting stripes and borders aside, which colour is the biggest shape in this emblem?"),
    "figure_shape": ("What shape is the largest figure in this emblem (not counting stripes or borders)?",
                     "Setting stripes and borders aside, which geometric shape is the biggest in this emblem?"),
    "mark_count": ("How many small {plural} are there in this emblem?",
                   "Count the small {plural} in this emblem. How many are there?"),
}

SHAPE_ALIASES: dict[str, tuple[str, ...]] = {
    "circle": ("disc", "disk"),
    "square": (),
    "triangle": (),
    "star": ("five-pointed star",),
    "diamond": ("rhombus", "lozenge"),
    "hexagon": (),
}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def all_template_text() -> list[str]:
    """Every fixed word the generator writes, reserved so no fictional name equals one."""
    texts: list[str] = list(MONTHS) + list(MOTTOS) + list(NAME_QUESTIONS) + list(NUMBER_WORDS)
    for spec in KINDS.values():
        texts += [spec.kind, spec.noun, spec.intro, *spec.suffixes]
        for fact in spec.facts:
            texts += [fact.sentence, fact.query, fact.unit, *fact.questions]
    for templates in VISUAL_QUESTIONS.values():
        texts += list(templates)
    for shape, aliases in SHAPE_ALIASES.items():
        texts += [shape, shape + "s", *aliases]
    return texts
