"""Fictional names composed from syllables.

Names must be unambiguous search keys: unique within a world, never an English word (a question
whose answer is "Harbor" would be answerable without searching, and a text search for it would
match unrelated pages), and never a word the question templates use (so "the name is not in the
question" can be checked by word match). `NameRegistry` enforces all three for every name a world
hands out: entities, people, cities, regions, rivers and distractors alike.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

# Onsets/nuclei/codas chosen to read as pronounceable but un-English ("Velmora", "Tarsk").
_ONSETS = (
    "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "br", "dr", "kr",
    "tr", "vr", "sk", "st", "gr", "h",
)
_NUCLEI = ("a", "e", "i", "o", "u", "a", "e", "o", "a", "ai", "ei", "ou")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "th", "k", "m", "sk", "nd", "rn", "v", "sh")

# Common English words of the shapes these syllables can form, plus anything offensive. Not a
# dictionary: the syllable inventory makes real words rare, this list catches the ones that occur.
_COMMON_WORDS = """
able about above actor after again agent alarm album alert alien alone along alter among anger
angle angry anode apart apple arena argue arise armor aroma array arrow aside asset atlas aura
avid bake baker band bank bare baron barn base basin bath bead beam bean bear beard beast bed
bell belt bend best beta bird bite blade bland blank blaze bleed blend bless blind bliss block
blond blood bloom blue blunt blur board boat body boil bold bolt bond bone bonus book boom boot
border bore born boss bound brain brake brand brave bread break breed brick bride brief bring
brisk broad broke brook brown brunt brush buddy build bulk bull bump bunk burn burst bush busy
cabin cable cake calm camel canal candy canon cargo carol carry cave cedar chain chair chalk
charm chart chase cheap check chess chest chief child chill china choir civil claim clam clan
clay clean clear clerk click cliff climb clock close cloth cloud clove coal coast coat code coil
coin cold comet coral core corn couch count court cover crab craft crane crash crate crave crawl
cream creek crest crew crime crisp crop cross crowd crown crude cruel crush cube curl curve cycle
daily dairy dance dare dark data date dawn deal dear debt decor delta demon denim dense depth
derby desk devil diary dine dirt disco dish diva dive dock dodge dome donor doom door dose doubt
dough dove down dozen draft drag drain drama drank draw dread dream dress drift drill drink drive
drone drove drum dry duck duel duke dull dune dusk dust duty dwell eagle early earth ease east
easy eaten echo edge elbow elder elite else ember empty enemy enjoy enter entry equal error essay
ethic event every exam exit extra fable face fact fade fail faint fair faith fake fall false fame
fancy farm fast fatal fault feast feed feel fern ferry fever fiber field fifth fight film final
find fine fire firm first fish five flag flame flank flash flask fleet flesh flint float flock
flood floor flora flour flow fluid flute foam focus fog fold folk font food fool force forge form
fort forty forum found fox frame fraud free fresh friar frost fruit fuel full fun fund fury fuse
gala game gamma gap garden gate gear gem genre ghost giant gift girl give glad glass gleam glide
globe gloom glory glove glue goal goat gold golf good goose gown grace grade grain grand grant
grape grass grave gravy great greed green greet grey grid grief grill grim grind grip groan groom
gross group grove grow guard guess guest guide guild gulf guru habit hail hair half hall halo hand
happy hard harm harp haste hatch haven hawk hazel head heal heap heart heat heavy hedge heir helm
help herb herd hero hill hint hobby hold hole holy home honey honor hood hook hope horn horse host
hotel hour house human humor hunt hurry hymn icon idea idol image inbox index inner input iron
isle issue ivory jade jazz jelly jewel joint joke jolly judge juice jump jury keen keep kettle kind
king kiss kite knee knife knot label labor lace lady lake lamb lamp land lane large laser last
later latin laugh lava lawn layer lead leaf lean learn lease least leave ledge legal lemon level
lever light lilac lily limb limit linen lion list live load loan lobby local lodge logic long
loop lord lose loss lotus loud love loyal lucky lunar lunch lung lure lyric magic major maker
manor maple march mark market marsh mask mass match mayor meal meat medal media melon memo menu
mercy merit merry metal meter might mild mile milk mill mind miner minor mint minus mirth mist
mixed model moist mold money monk month moon moral more moss motel motor mount mouse mouth move
movie mud mural music myth nail naive name navy near neat nerve never new news night noble noise
north nose note novel nurse nylon oasis ocean odds offer often olive omega onion open opera orbit
order organ other otter outer owner ozone pace pack page paint palm panel panic paper park party
pasta paste patch path pause peace peach pearl pedal penny perch peril petal phase phone photo
piano piece pilot pine pink pipe pitch pixel pizza place plain plane plank plant plate plaza plot
plum poem poet point polar pole pond pony pool porch port pose posse pound power press price
pride prime print prior prism prize probe prone proof proud prune pulse punch pupil pure purse
quake queen quest quick quiet quilt quota quote radar radio rain raise rally ranch range rapid
rare raven razor reach react ready realm rebel red reef relay relic remedy rest ridge rifle right
rigid ring rinse riot rise risk rival river road roast robe robin robot rock rogue role roll roof
room root rope rose rosy rough round route royal ruby rule rumor rural rush rust saga sage saint
salad salon salt sand sauce scale scene scent scope score scout scrap sea seal seed sense serve
seven shade shake shame shape share shark sharp sheep shelf shell shield shift shine ship shirt
shock shore short shown shrub side siege sight sigma silk silly silver since siren sixth skate
skill skirt skull slate sleep slice slide slope small smart smile smoke snake snow sofa solar
solid solo sonar sound south space spade spark speak spear speed spell spend spice spike spine
spiral spoke spoon sport spray squad stack staff stage stain stair stake stamp stand star start
state steam steel steep stem stick still stock stone stool storm story stove strap straw stream
street strip stud study style sugar suite sunny super surf swamp swan sweet swift sword table
tale talk tall tank tape taste teach team tear tempo tend tenor term test text thank theme thick
thief thing thorn three throne thumb tide tiger timber time tiny title toast token tomb tone
tooth topic torch total touch tough tour tower town toxic trace track trade trail train trait
tram treat tree trend trial tribe trick troll troop trout truck true trunk trust truth tulip tuna
tuner twin ultra uncle under union unity until upper urban usage usual valid valley value valve
vapor vault venue verb verse video villa vinyl viola viral virus visa visit vital vivid vocal
voice voter wagon waist walk wall wand warm waste watch water wave weary weave wedge weed week
west whale wheat wheel white whole widow width wild wind wine wing wise witch woman wood world
worry worth wound yacht yard yarn year young youth zebra zero zone
damn dork puke slut turd crap piss shit fuck cunt dick cock tits porn rape anal nazi
""".split()

_BANNED_SUBSTRINGS = ("fuck", "shit", "cunt", "rape", "nazi", "slut", "porn", "dick", "cock", "piss")

WORD_RE = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


class NameRegistry:
    """Hands out fictional names, each unique (case-insensitively) and not a reserved word.

    `reserve(text)` adds every word of a template so that no generated name can equal it. Uniqueness
    is on every word of every issued name: "Velmora Guild" blocks "Velmora" from being a city too,
    so a name word identifies one thing in the corpus.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._blocked: set[str] = set(_COMMON_WORDS)
        self._issued: set[str] = set()
        for text in reserved:
            self.reserve(text)

    def reserve(self, text: str) -> None:
        for word in _words(text):
            self._blocked.add(word)

    def is_free(self, word: str) -> bool:
        lower = word.lower()
        if len(lower) < 4 or lower in self._blocked or lower in self._issued:
            return False
        if lower.endswith("s") and lower[:-1] in self._blocked:
            return False
        if any(bad in lower for bad in _BANNED_SUBSTRINGS):
            return False
        return True

    def claim(self, word: str) -> str:
        lower = word.lower()
        if not self.is_free(lower):
            raise ValueError(f"name {word!r} is reserved, a common word or already issued")
        self._issued.add(lower)
        return word

    def issued(self, word: str) -> bool:
        return word.lower() in self._issued

    def new_word(self, rng: random.Random, min_syllables: int = 2, max_syllables: int = 3,
                 max_len: int = 9) -> str:
        """A fresh capitalised name word; retries (deterministically, from `rng`) until one is free."""
        for _ in range(10_000):
            word = compose_word(rng, min_syllables, max_syllables)
            if len(word) <= max_len and self.is_free(word):
                return self.claim(word.capitalize())
        raise RuntimeError("name space exhausted: could not find a free name in 10000 tries")

    def similar_word(self, rng: random.Random, base: str) -> str:
        """A fresh name sharing `base`'s first syllables (for distractors: "Velmora" -> "Velmorin")."""
        base = base.lower()
        for _ in range(1_000):
            keep = max(2, len(base) - rng.randint(1, 3))
            word = _tidy(base[:keep] + rng.choice(_NUCLEI) + rng.choice(_CODAS))
            if word != base and len(word) <= 11 and self.is_free(word):
                return self.claim(word.capitalize())
        return self.new_word(rng)


def compose_word(rng: random.Random, min_syllables: int = 2, max_syllables: int = 3) -> str:
    """Syllables onset+nucleus(+coda); only the last syllable may end in a cluster coda."""
    count = rng.randint(min_syllables, max_syllables)
    parts = []
    for position in range(count):
        onset = rng.choice(_ONSETS)
        nucleus = rng.choice(_NUCLEI)
        coda = rng.choice(_CODAS) if position == count - 1 else rng.choice(("", "", "n", "r", "l", "s"))
        parts.append(onset + nucleus + coda)
    return _tidy("".join(parts))


def _tidy(word: str) -> str:
    """Collapse doubled letters, which read as typos in made-up names ("Grikaa" -> "Grika")."""
    return re.sub(r"(.)\1+", r"\1", word)
