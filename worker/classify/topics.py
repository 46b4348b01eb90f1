"""Topic term tables: which part of Ukraine's security an article is about.

A topic is reported only for a Ukraine-security article (see ``worker.classify.verdict``);
its terms also count as security evidence in the rule layer (at half weight, because they
overlap the generic security vocabulary in ``worker.classify.lexicon``). Entries follow the
lexicon's format: ``(pattern, weight)``, casefolded regular-expression fragments without
capturing groups, spaces matching any run of whitespace or hyphens.

Changing anything here changes classifications: bump ``CLASSIFIER_VERSION`` in
``worker/classify/verdict.py`` and run ``ingest reclassify``.
"""

from __future__ import annotations

from .lexicon import Terms

TOPICS: tuple[str, ...] = (
    "ceasefire_diplomacy",
    "security_guarantees",
    "peacekeeping_force",
    "military_aid",
    "battlefield",
    "sanctions",
    "european_defence",
    "nuclear_safety",
)
"""The taxonomy, in the order evidence lists it."""

CEASEFIRE_DIPLOMACY: Terms = (
    (r"cease fires?", 1.2),
    (r"ceasefires?", 1.2),
    (r"truces?", 1.0),
    (r"armistice", 1.2),
    (
        r"peace (?:talks|plan|deal|process|settlement|negotiations?|summit|formula|proposal"
        r"|initiative|efforts?|agreement|accord|framework|mission)",
        1.2,
    ),
    (r"negotiat\w*", 0.6),
    (r"negotiating table", 1.0),
    (r"minsk (?:agreements?|accords?|protocol)", 1.2),
    (r"minsk", 0.4),
    (r"end (?:the|this) war", 1.0),
    (r"peace", 0.5),
    (r"peacefully", 0.4),
    (r"mediat\w*", 0.5),
    (r"diplomac\w*|diplomatic", 0.5),
    (r"settlement", 0.4),
    (r"talks", 0.4),
    (r"frozen conflict", 1.0),
    (r"contact group", 0.8),
    (r"normandy format", 1.2),
    # Ukrainian / Russian
    (r"припинен\w* вогню", 1.2),
    (r"перемир\w*", 1.2),
    (r"мирн\w* переговор\w*|мирн\w* план\w*|мирн\w* угод\w*", 1.2),
    (r"переговор\w*", 0.6),
    (r"прекращени\w* огня", 1.2),
    (r"мирн\w* соглашени\w*", 1.2),
    # French
    (r"cessez le feu", 1.2),
    (r"trêve", 1.0),
    (r"négociations?", 0.6),
    (r"pourparlers", 0.6),
    (r"(?:plan|accord|négociations|pourparlers) de paix", 1.2),
    # German
    (r"waffenstillstand\w*", 1.2),
    (r"waffenruhe", 1.2),
    (r"friedens(?:verhandlungen|gespräche|plan|abkommen|prozess)", 1.2),
    (r"verhandlungen", 0.6),
)

SECURITY_GUARANTEES: Terms = (
    (r"security guarantees?", 1.5),
    (r"security assurances?", 1.3),
    (r"security commitments?", 1.2),
    (r"security (?:pact|agreement|arrangements?)", 1.0),
    (r"guarantees? (?:of|for) (?:ukraine's |kyiv's )?security", 1.3),
    (r"postwar security|post war security", 1.2),
    (r"backstop", 0.8),
    (r"article 5", 1.0),
    (r"budapest memorandum", 1.3),
    (r"memorandum on security assurances", 1.3),
    (r"nato (?:membership|accession|bid|invitation|path|pathway)", 1.3),
    (r"(?:ukraine's|kyiv's) (?:nato )?(?:membership|accession|bid)", 1.3),
    (r"invit\w* (?:ukraine|kyiv)", 1.0),
    (r"join(?:ing)? (?:the )?(?:nato|alliance|military alliance)", 1.0),
    (r"membership", 0.4),
    (r"accession", 0.5),
    (r"israel (?:style |like )?(?:model|security model)|security model", 0.8),
    (r"solidarity", 0.2),
    # uk / ru / fr / de
    (r"гаранті\w* безпеки", 1.5),
    (r"гаранти\w* безопасности", 1.5),
    (r"членств\w* (?:в|у) нато", 1.3),
    (r"garanties? de sécurité", 1.5),
    (r"sicherheitsgarantien?", 1.5),
    (r"nato beitritt\w*|nato mitgliedschaft", 1.3),
)

PEACEKEEPING_FORCE: Terms = (
    (r"peace[\s-]?keep\w*", 1.3),
    (r"reassurance force", 1.5),
    (r"reassurance", 0.6),
    (r"(?:european|british|french|foreign|western|nato) troops", 1.0),
    (r"troops on the ground|boots on the ground", 1.2),
    (r"deploy\w* (?:of )?(?:troops|forces|a force)", 1.0),
    (r"stabili[sz]ation force", 1.2),
    (r"coalition of the willing", 1.3),
    (r"multinational force", 1.0),
    (r"monitoring mission", 0.8),
    (r"observers?", 0.3),
    (r"buffer zone", 0.8),
    (r"demilitari[sz]ed zone", 0.8),
    # uk / ru / fr / de
    (r"миротвор\w*", 1.3),
    (r"force de (?:maintien de la paix|réassurance)", 1.5),
    (r"casques bleus", 1.2),
    (r"friedenstrupp\w*", 1.3),
    (r"schutztrupp\w*", 1.0),
    (r"friedenssicherung\w*", 1.0),
)

MILITARY_AID: Terms = (
    (r"military (?:aid|assistance|support|package|help)", 1.5),
    (r"security assistance", 1.3),
    (r"aid package", 1.0),
    (
        r"(?:weapons?|arms) (?:deliver\w*|supply|supplies|shipments?|transfers?|package|aid|fund)",
        1.3,
    ),
    (
        r"(?:send|sending|sent|supply|supplying|provide|providing|deliver|delivering|ship"
        r"|donate|donating|pledge[ds]?)\w* (?:\w+ ){0,3}"
        r"(?:weapons|arms|tanks|jets|missiles|ammunition|shells|air defen[cs]es)",
        1.2,
    ),
    (r"(?:aid|funding|support|assistance) (?:for|to) (?:ukraine|kyiv)", 1.2),
    (r"ukraine (?:aid|funding)", 1.2),
    (r"(?:billion|bn|million) (?:for|to) (?:ukraine|kyiv)", 1.0),
    (r"(?:tank|weapons?|arms|jet|missile) deliver\w*", 1.3),
    (r"tanks?", 0.8),
    (r"leopard\w*", 1.2),
    (r"abrams", 1.2),
    (r"challenger (?:2|ii)", 1.2),
    (r"bradley", 0.8),
    (r"f[\s-]?16s?", 1.2),
    (r"patriot", 1.0),
    (r"himars", 1.3),
    (r"atacms", 1.3),
    (r"storm shadow", 1.3),
    (r"taurus", 1.0),
    (r"iris[\s-]t", 1.2),
    (r"nasams", 1.2),
    (r"frankensam\w*", 1.2),
    (r"javelins?", 1.0),
    (r"howitzers?", 1.2),
    (r"ammunition|munitions", 1.0),
    (r"shells", 0.6),
    (r"cluster (?:bombs|munitions)", 1.2),
    (r"depleted uranium", 1.0),
    (r"long[\s-]range (?:weapons|missiles|strike)", 1.2),
    (r"air defen[cs]es?(?: systems?)?", 1.3),
    (r"anti[\s-]aircraft", 1.2),
    (r"arms (?:sales?|exports?|imports?|industry|manufacturers?)", 0.8),
    (r"defen[cs]e (?:industry|firms?|contractors?)", 0.6),
    (r"pilots? training|train\w* (?:ukrainian )?pilots", 1.2),
    (r"lend[\s-]lease", 1.0),
    (r"ramstein", 1.2),
    (r"european peace facility", 1.3),
    (
        r"\$?\d[\d.,]* ?(?:billion|bn|million|m) (?:in |of |worth of )?"
        r"(?:military|weapons|arms|aid)",
        1.0,
    ),
    # uk / ru / fr / de
    (r"військов\w* допомог\w*", 1.5),
    (r"постачан\w* зброї", 1.5),
    (r"военн\w* помощ\w*", 1.5),
    (r"поставк\w* оружия", 1.5),
    (r"aide militaire", 1.5),
    (r"livraisons? d'armes", 1.5),
    (r"militärhilfe\w*", 1.5),
    (r"waffenlieferung\w*", 1.5),
    (r"kampfpanzer\w*|panzer\w*", 1.0),
    (r"luftverteidigung\w*|flugabwehr\w*", 1.3),
    (r"défense (?:anti[\s-]?aérienne|aérienne)", 1.3),
    (r"протиповітрян\w* оборон\w*", 1.3),
    (r"противовоздушн\w* оборон\w*", 1.3),
)

BATTLEFIELD: Terms = (
    (r"front ?lines?", 1.3),
    (r"counter[\s-]?offensive", 1.4),
    (r"offensive", 1.0),
    (r"shelling|shelled", 1.2),
    (r"(?:missile|drone|rocket|air|artillery) (?:strikes?|attacks?|barrages?|assaults?)", 1.3),
    (r"bombard\w*", 1.1),
    (r"air raids?", 1.1),
    (r"air[\s-]?raid sirens?", 1.1),
    (r"shot down|intercept\w*", 1.0),
    (r"recaptur\w*|retak\w*|liberat\w*", 0.8),
    (r"advanc\w*", 0.5),
    (r"withdr[ae]w\w*|retreat\w*", 0.4),
    (r"battle\w*", 0.8),
    (r"fighting|fierce fighting|heavy fighting", 0.9),
    (r"clashes", 0.8),
    (r"assault\w*", 0.7),
    (r"trench\w*", 0.8),
    (r"killed|dead|deaths?|death toll", 0.4),
    (r"civilians?", 0.4),
    (r"casualt\w*", 0.7),
    (r"strikes?|struck", 0.6),
    (r"drones?|missiles?", 0.6),
    (r"sea drones?|naval drones?", 1.2),
    (r"tank battle", 1.2),
    (r"positions", 0.5),
    (r"troops", 0.5),
    (r"infrastructure", 0.3),
    (r"power grid|energy infrastructure", 0.6),
    (r"dam", 0.5),
    (r"hostilities", 1.0),
    (r"separatists?", 0.7),
    (r"occupied|occupying", 0.6),
    # uk / ru / fr / de
    (r"обстріл\w*|обстрел\w*", 1.2),
    (r"фронт\w*", 1.1),
    (r"контрнаступ\w*", 1.4),
    (r"наступ(?:у|ом|і)?|наступлени\w*", 1.0),
    (r"ракетн\w* удар\w*|ракетн\w* атак\w*", 1.3),
    (r"збит\w*|сбит\w*", 0.9),
    (r"загинул\w*|загибл\w*|погиб\w*", 0.5),
    (r"frappes?", 1.0),
    (r"contre[\s-]offensive", 1.4),
    (r"ligne de front", 1.3),
    (r"bombardements?", 1.1),
    (r"combats", 0.9),
    (r"gegenoffensive", 1.4),
    (r"frontlinie|front", 1.0),
    (r"beschuss|angriff\w*", 1.0),
    (r"kämpfe\w*", 0.9),
)

SANCTIONS: Terms = (
    (r"sanction\w*", 1.4),
    (r"embargo\w*", 1.0),
    (r"price cap", 1.2),
    (r"asset freeze|frozen (?:russian )?assets|russian assets|seiz\w* (?:russian )?assets", 1.2),
    (r"export controls?", 0.8),
    (r"blacklist\w*", 0.6),
    (r"санкц\w*", 1.4),
    (r"sanktion\w*", 1.4),
)

EUROPEAN_DEFENCE: Terms = (
    (r"nato", 1.0),
    (r"otan", 1.0),
    (r"нато", 1.0),
    (r"north atlantic treaty", 1.0),
    (r"alliance", 0.5),
    (r"allies", 0.5),
    (r"stoltenberg|rutte", 0.6),
    (r"(?:defen[cs]e|military) (?:spending|budgets?|ministers?|industry|production)", 1.0),
    (r"rearm\w*", 1.0),
    (r"european defen[cs]e", 1.2),
    (r"eastern flank", 1.0),
    (r"bundeswehr", 1.0),
    (r"munich security conference", 1.2),
    (r"vilnius summit|nato summit", 1.2),
    (r"ramstein", 0.8),
    (r"european (?:union|council|commission|leaders)", 0.3),
    (r"g7", 0.4),
    (r"défense européenne", 1.2),
    (r"verteidigungs(?:ausgaben|haushalt|minister\w*)", 1.0),
    (r"оборонн\w* бюджет\w*", 1.0),
)

NUCLEAR_SAFETY: Terms = (
    (r"nuclear (?:power )?(?:plant|station|facility|reactor)s?", 1.5),
    (r"zaporizhzhia nuclear|zaporizhzhia plant|znpp", 1.6),
    (r"chornobyl|chernobyl", 1.2),
    (r"iaea", 1.3),
    (r"atomic energy agency", 1.3),
    (r"grossi", 1.0),
    (r"radiation|radioactive", 0.8),
    (r"nuclear (?:accident|disaster|catastrophe|safety)", 1.4),
    (r"reactors?", 0.8),
    (r"аес", 1.5),
    (r"магате", 1.3),
    (r"магатэ", 1.3),
    (r"чорнобил\w*|чернобыл\w*", 1.0),
    (r"centrale nucléaire", 1.5),
    (r"aiea", 1.3),
    (r"atomkraftwerk\w*|kernkraftwerk\w*|akw", 1.5),
)

TOPIC_TERMS: dict[str, Terms] = {
    "ceasefire_diplomacy": CEASEFIRE_DIPLOMACY,
    "security_guarantees": SECURITY_GUARANTEES,
    "peacekeeping_force": PEACEKEEPING_FORCE,
    "military_aid": MILITARY_AID,
    "battlefield": BATTLEFIELD,
    "sanctions": SANCTIONS,
    "european_defence": EUROPEAN_DEFENCE,
    "nuclear_safety": NUCLEAR_SAFETY,
}
