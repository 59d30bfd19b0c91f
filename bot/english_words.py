"""A small list of common English words (and fans' chat spellings of them), written for the
language guard: a message whose words are mostly here is English whatever a character-level
detector thinks of it ("privacy question" scored as Spanish, "hello everyone" as Italian).

Function words of the languages we detect that are not also everyday English (Spanish "el",
"de", "que", French "le", "je", German "und", "ich", Portuguese "não") are deliberately absent;
shared ones ("a", "no", "me", "in", "was") stay, so a short foreign sentence still matches few
words here. Matching is on lower-case words with accents kept.
"""

from __future__ import annotations

_WORDS = """
a about above across actually add added after again against ago ah all almost alone along already
also although always am among an and another answer answers any anybody anyone anything anyway anywhere
app apps are aren't around as ask asked asking at available away awesome awful back bad badly banned
be because become been before behind being believe below best better between big bit both bought bot
box break broke broken bring brought but buy by call called calling came can can't cannot cant care
case change changed charge charged cheap check checked child choose clear close come comes coming
computer could couldn't couldnt cool country day days dear did didn't didnt different do does doesn't
doesnt doing don't done dont down during each early easy either else email end enough even ever every
everybody everyone everything everywhere exactly example fail failed fair far fast feel few fine first
fix fixed for forever forgot forget found free friend friends from front full fun funny gave get gets
getting give given glad go goes going gone gonna good got gotta great had happen happened happens
happy hard has hasn't hasnt have haven't havent having he hear heard hello help helped helps her here
hers hey hi him his home hope how however i i'd i'll i'm i've if im in info information inside instead
into is isn't isnt it it's its itself just keep keeps kind knew know known last late later least leave
left less let let's like liked likes little live long look looking looks lose lost lot lots love made
make makes making many may maybe me mean means mine minute minutes mistake moment money month months
more morning most much must my myself name near need needed needs never new next nice night no nobody
none nope not nothing now number of off often oh ok okay old on once one only open or order other
others our out over own page paid part past pay people person phone place please pls plz point
possible pretty probably problem problems put question questions quick quickly quite rather read request requests
ready real really reason right said same saw say says see seem seems seen send sent set several shall
she should shouldn't show side since site small so some somebody someone something sometimes soon
sorry still stop stopped stuff such suddenly support sure take taking talk talking tell than thank
thanks that that's thats the their them then there there's these they they're thing things think this
those though thought through time times to today together told tomorrow too took tried tries try
trying turn twice two under understand until up upon us use used using very wait want wanted wants
was wasn't way we we're well went were weren't what what's whats when where which while who whole
whom why will with without won't wont work worked working works world would wouldn't wrong yeah year
years yes yesterday yet you you're your yours yourself

# fans' chat spellings
lol lmao omg btw idk imo tbh thx ty u ur r ya yep yup pls plz kinda wanna gotta gimme dunno
sup yo nah hmm ugh wtf asap rn bc cuz tho thru coz fyi brb irl ppl msg msgs dm dms

# the fan community's topics, in plain English
access account accounts ad ads adult age alert announcement annual app audio ban banner billing
bill birthday block blocked blurry buffer buffering bug calendar canada cancel cancelled canceled card
cast channel chat code comment comments community confirm connection contact content convention
conversation conversations cost credit credentials creator crash crashes crashing credit data date
dates deal delete deleted deletion delivered delivery device discount discord download drop drops
dropped encrypted encryption episode episodes error event events fan fans fandom feature fee film
finale forum gems gift glitch harass harassed harassing harassment hidden hoodie host internet invalid
invite issue issues lag lagging language link live lock locked log logged login logs loading mail
member membership merch merchandise message messages mod moderator moderators movie movies music
night notification notifications online package panel party password payment plan plans post
premiere premium price pricing privacy private profile promo promotion purchase rating recommend
recommendation refund register release released report reset return rule rules schedule screen
season seasons security series server share shipping shirt shop show shows sign signup size slow
slack sound spoiler spoilers star stream streaming streams student subscription subtitles tag
ticket tickets trailer tv update upload user username video videos viewer watch watching website week
weekend
"""

WORDS: frozenset[str] = frozenset(
    word for line in _WORDS.splitlines() if not line.startswith("#") for word in line.split()
)
