"""Unit tests for worker.classify (the Ukraine-security rule classifier)."""

from __future__ import annotations

import dataclasses
import json
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.classify import (
    CLASSIFIER_VERSION,
    TOPICS,
    Classification,
    analyse,
    classify,
    classify_rules_only,
    cyrillic_features,
)
from worker.classify.features import consonant_skeleton
from worker.classify.weights import cyrillic_model

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = REPO_ROOT / "seeds" / "seed-article.txt"
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# Held-out figures of hybrid-2026.12.8, whose English path 12.9 keeps (rules + the distilled
# English stage; docs/classifier.md, each scored once), rounded down and kept as regression
# floors. Targets: P >= 0.95, R >= 0.90.
# test2 - the release gate (eval/labels/HOLDOUT2_PLAN.md): 1,200 feed items, P 0.966,
# R 0.863 (544/19/86); 12.3/12.4 had 0.954 / 0.851.
TEST2_MIN_PRECISION = 0.96
TEST2_MIN_RECALL = 0.86
# test4 - the split that judged the distilled stage (HOLDOUT4_PLAN.md): P 0.969, R 0.783.
TEST4_MIN_PRECISION = 0.96
TEST4_MIN_RECALL = 0.78
# test - the first held-out split (484 items; stricter labels than dev): P 0.940, R 0.863.
TEST_SPLIT_MIN_PRECISION = 0.93
TEST_SPLIT_MIN_RECALL = 0.86


def _seed() -> tuple[str, str]:
    title, _, body = SEED.read_text(encoding="utf-8").partition("\n")
    return title, body


# --- interface ---------------------------------------------------------------------------


def test_interface_constants() -> None:
    assert CLASSIFIER_VERSION.startswith("hybrid-")
    assert TOPICS == (
        "ceasefire_diplomacy",
        "security_guarantees",
        "peacekeeping_force",
        "military_aid",
        "battlefield",
        "sanctions",
        "european_defence",
        "nuclear_safety",
    )


def test_result_is_frozen_and_json_serialisable() -> None:
    result = classify(title="Russian missiles hit Kyiv", body="Air defence shot down drones.")
    assert isinstance(result, Classification)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 0.0  # type: ignore[misc]
    json.dumps(result.evidence)
    assert result.version == CLASSIFIER_VERSION
    assert set(result.topics) <= set(TOPICS)


def test_deterministic() -> None:
    title, body = _seed()
    assert classify(title=title, body=body) == classify(title=title, body=body)


# --- seed ------------------------------------------------------------------------------------


def test_seed_article_is_ukraine_security_with_expected_topics() -> None:
    title, body = _seed()
    result = classify(title=title, body=body, language="en")
    assert result.is_ukraine_security
    assert result.score >= 0.8
    assert "security_guarantees" in result.topics
    assert "peacekeeping_force" in result.topics
    assert "ukraine" in result.evidence["ukraine_context"]
    assert result.evidence["security_guarantees"]
    assert result.evidence["peacekeeping_force"]


# --- one positive example per topic ------------------------------------------------------

TOPIC_EXAMPLES = {
    "ceasefire_diplomacy": (
        "Kyiv and Moscow delegations meet for ceasefire talks in Istanbul",
        "Ukrainian and Russian negotiators discussed a 30-day ceasefire and the outline of "
        "peace talks, mediators said.",
    ),
    "security_guarantees": (
        "Allies offer Ukraine security guarantees short of NATO membership",
        "Western leaders discussed security guarantees for Ukraine after any ceasefire, "
        "including long-term military commitments.",
    ),
    "peacekeeping_force": (
        "Britain and France plan reassurance force for Ukraine",
        "European troops could be deployed to Ukraine as part of a peacekeeping mission "
        "after a ceasefire, officials said.",
    ),
    "military_aid": (
        "US announces new military aid package for Ukraine",
        "The package includes Patriot interceptors, HIMARS ammunition and artillery shells "
        "for Ukraine's armed forces.",
    ),
    "battlefield": (
        "Russian missile strikes on Kharkiv kill five",
        "Russia launched a barrage of missiles and drones overnight; Ukrainian air defence "
        "shot down most of them as fighting raged along the front line.",
    ),
    "sanctions": (
        "EU agrees new sanctions on Russia over war in Ukraine",
        "The 14th sanctions package targets Russian LNG and the shadow fleet used to evade "
        "the oil price cap.",
    ),
    "european_defence": (
        "NATO defence ministers agree to boost air defence for Ukraine",
        "NATO allies meeting in Brussels pledged to raise defence spending and speed "
        "deliveries to Kyiv.",
    ),
    "nuclear_safety": (
        "IAEA warns of danger at Zaporizhzhia nuclear plant",
        "Shelling near the Russian-occupied Zaporizhzhia nuclear power plant in Ukraine cut "
        "its last external power line, the IAEA said.",
    ),
}


@pytest.mark.parametrize("topic", TOPICS)
def test_each_topic_has_a_positive_example(topic: str) -> None:
    title, body = TOPIC_EXAMPLES[topic]
    result = classify(title=title, body=body)
    assert result.is_ukraine_security, result
    assert topic in result.topics, result.topics
    assert result.evidence[topic]


# --- negatives -------------------------------------------------------------------------------

NEGATIVES = {
    "gaza_ceasefire": (
        "Israel and Hamas agree ceasefire in Gaza",
        "The truce, mediated by Qatar and Egypt, will see hostages released and aid trucks "
        "enter the Gaza Strip.",
    ),
    "sudan_ceasefire": (
        "Sudan's warring generals agree 24-hour ceasefire",
        "Fighting between the army and the Rapid Support Forces continued in Khartoum despite "
        "the truce announced in Jeddah.",
    ),
    "ukraine_sport": (
        "Ukraine beat Iceland to reach Euro 2024 finals",
        "Mykhailo Mudryk scored the winner as Ukraine's football team qualified for the "
        "tournament in Germany.",
    ),
    "ukraine_culture": (
        "Ukrainian orchestra tours Europe with Beethoven programme",
        "The orchestra's musicians performed at a festival in Vienna and will give concerts "
        "in Paris and Berlin.",
    ),
    "ukraine_grain_prices": (
        "Wheat prices ease as Ukraine harvest beats forecasts",
        "Grain prices fell on the Chicago exchange as Ukraine's farmers reported a strong "
        "harvest and exports rose.",
    ),
    "nato_without_ukraine": (
        "NATO holds biggest air drills in the Baltic",
        "More than 250 aircraft from 24 NATO countries take part in a two-week exercise over "
        "Germany, the alliance said.",
    ),
    "other_conflict_peace_talks": (
        "Colombia and ELN rebels resume peace talks",
        "Negotiators for the government and the guerrilla group will meet in Havana next week.",
    ),
}


@pytest.mark.parametrize("case", sorted(NEGATIVES))
def test_listed_negatives_are_rejected(case: str) -> None:
    title, body = NEGATIVES[case]
    result = classify(title=title, body=body)
    assert not result.is_ukraine_security, result
    assert result.topics == ()


def test_passing_mention_in_long_unrelated_body_is_rejected() -> None:
    paragraph = (
        "The city council approved a new budget for schools and public libraries on Tuesday. "
        "Teachers welcomed the extra funding for classrooms, books and school meals. "
        "Parents said the changes to bus routes would make mornings easier for families. "
    )
    body = paragraph * 40 + "One councillor noted that energy prices rose after the war in Ukraine."
    result = classify(title="Council approves school budget", body=body)
    assert not result.is_ukraine_security
    assert result.score < 0.3


def test_title_outweighs_body() -> None:
    body = "Officials gave no further details."
    strong = classify(title="Russian drones strike Kyiv overnight", body=body)
    weak = classify(title="Officials comment", body="Russian drones strike Kyiv overnight. " + body)
    assert strong.score > weak.score


# --- non-English (hand-written; no labelled non-English data exists) ---------------------

NON_ENGLISH_POSITIVES = {
    "uk": (
        "Росія завдала масованого ракетного удару по Києву",
        "Сили ППО збили більшість ракет і дронів, повідомили в Повітряних силах ЗСУ. "
        "Обстріли тривають на фронті біля Бахмута.",
        "battlefield",
    ),
    "uk_ceasefire": (
        "Україна і партнери обговорюють перемир'я та гарантії безпеки",
        "Переговори про припинення вогню продовжаться наступного тижня в Женеві.",
        "ceasefire_diplomacy",
    ),
    "ru": (
        "Украина и Россия обсуждают прекращение огня",
        "Переговоры о перемирии в Стамбуле продолжатся, заявили в Киеве. "
        "Военная помощь Украине обсуждалась отдельно.",
        "ceasefire_diplomacy",
    ),
    "fr": (
        "Cessez-le-feu en Ukraine : Paris propose une force de réassurance",
        "La France et le Royaume-Uni veulent offrir des garanties de sécurité à l'Ukraine "
        "après un accord avec la Russie, selon l'Élysée.",
        "security_guarantees",
    ),
    "de": (
        "Waffenstillstand in der Ukraine: Berlin prüft Sicherheitsgarantien",
        "Die Bundesregierung kündigte weitere Militärhilfe und Waffenlieferungen für die "
        "Ukraine an; Kiew fordert mehr Luftverteidigung.",
        "military_aid",
    ),
}


@pytest.mark.parametrize("case", sorted(NON_ENGLISH_POSITIVES))
def test_non_english_positives(case: str) -> None:
    title, body, topic = NON_ENGLISH_POSITIVES[case]
    result = classify(title=title, body=body, language=case[:2])
    assert result.is_ukraine_security, result
    assert topic in result.topics, result.topics


def test_cyrillic_word_boundaries_and_inflection() -> None:
    inflected = classify(title="Обстріл Харкова", body="Удар по Києву: ракети збила ППО.")
    assert "києву" in inflected.evidence["ukraine_context"]
    # "наступного" (= next) must not count as "наступ" (= offensive).
    result = classify(title="Наступного тижня", body="Засідання наступного тижня.")
    assert "наступного" not in result.evidence["security_context"]


@pytest.mark.parametrize(
    ("ukrainian", "russian"),
    [
        ("обстріл", "обстрелы"),
        ("окупанти", "оккупанты"),
        ("переговори", "переговоры"),
        ("перемир'я", "перемирие"),
        ("санкції", "санкции"),
        ("Зеленський", "Зеленский"),
        ("ґрунт", "грунт"),
    ],
)
def test_ukrainian_and_russian_cognates_share_a_consonant_skeleton(
    ukrainian: str, russian: str
) -> None:
    assert consonant_skeleton(ukrainian) == consonant_skeleton(russian)
    # ...and the Cyrillic stage sees the same ``k:`` feature for both.
    uk_features = cyrillic_features(analyse(ukrainian, ""))
    ru_features = cyrillic_features(analyse(russian, ""))
    assert "k:" + consonant_skeleton(russian) in uk_features.keys() & ru_features.keys()


def test_unrelated_words_keep_different_skeletons() -> None:
    words = ("війна", "мир", "ракета", "футбол", "вибори", "погода", "удар", "дрон")
    assert len({consonant_skeleton(w) for w in words}) == len(words)


_CYRILLIC_LETTERS = "абвгґдеєжзиіїйклмнопрстуфхцчшщьюяёыэъ'"


@given(st.text(alphabet=_CYRILLIC_LETTERS + _CYRILLIC_LETTERS.upper(), max_size=30))
def test_a_skeleton_is_at_most_four_consonants_and_stable(word: str) -> None:
    skeleton = consonant_skeleton(word)
    assert len(skeleton) <= 4
    assert not set(skeleton) & set("аеёиіїоуыэюяєйьъ'ґ")
    assert all(a != b for a, b in pairwise(skeleton))
    assert consonant_skeleton(skeleton) == skeleton
    assert skeleton == consonant_skeleton(word.lower())


def test_the_shipped_cyrillic_stage_reads_skeletons() -> None:
    # Ukrainian leads are decided by what the stage learned mostly from Russian posts
    # (eval/labels/CYRILLIC2_PLAN.md); the shared skeletons are what carries it over.
    weights = cyrillic_model().weights
    assert sum(1 for name in weights if name.startswith(("k:", "tk:"))) > 1_000
    result = classify(
        title="Окупанти обстріляли Херсон",
        body="Внаслідок обстрілу поранено трьох людей, повідомила ОВА.",
        language="uk",
    )
    assert result.is_ukraine_security
    assert any(e.startswith(("k:", "tk:")) for e in result.evidence["model"][1:])


def test_non_english_negative_sport() -> None:
    result = classify(
        title="Динамо Київ виграло матч чемпіонату",
        body="Футбольний клуб Динамо Київ переміг у матчі чемпіонату України з футболу.",
        language="uk",
    )
    assert not result.is_ukraine_security


# --- learned second stage --------------------------------------------------------------------


def test_english_decision_comes_from_model_with_explanation() -> None:
    title, body = _seed()
    result = classify(title=title, body=body, language="en")
    assert result.evidence["model"][0].startswith("rule_score=")
    assert len(result.evidence["model"]) > 1
    # language unset and English-looking text also goes through the model
    assert "model" in classify(title=title, body=body).evidence


@pytest.mark.parametrize("case", sorted(c for c in NON_ENGLISH_POSITIVES if c[:2] in ("fr", "de")))
def test_latin_non_english_keeps_rule_decision(case: str) -> None:
    title, body, _ = NON_ENGLISH_POSITIVES[case]
    for language in (case[:2], None):
        result = classify(title=title, body=body, language=language)
        rules = classify_rules_only(title=title, body=body)
        assert "model" not in result.evidence
        assert result.score == rules.score
        assert result.is_ukraine_security == rules.is_ukraine_security


@pytest.mark.parametrize("case", sorted(c for c in NON_ENGLISH_POSITIVES if c[:2] in ("uk", "ru")))
def test_ukrainian_and_russian_go_to_the_cyrillic_stage(case: str) -> None:
    title, body, _ = NON_ENGLISH_POSITIVES[case]
    for language in (case[:2], None):  # declared, or recognised by its script
        result = classify(title=title, body=body, language=language)
        assert result.is_ukraine_security, result
        assert result.evidence["model"][0].startswith("rule_score=")
        assert any(
            e.startswith(("k:", "tk:", "s:", "ts:", "lx:", "r:"))
            for e in result.evidence["model"][1:]
        )


def test_cyrillic_stage_accepts_war_posts_without_a_ukraine_word() -> None:
    # Russian-side strike reports rarely name Ukraine; the rule layer (which needs Ukraine
    # context) rejected this, the stage trained on Russian dev posts does not.
    title = ""
    body = (
        "Минобороны РФ: в течение прошедшей ночи средства ПВО уничтожили 24 БПЛА над "
        "территорией Ростовской области и три над акваторией Черного моря."
    )
    assert not classify_rules_only(title=title, body=body).is_ukraine_security
    assert classify(title=title, body=body, language="ru").is_ukraine_security


@pytest.mark.parametrize(
    ("title", "body", "language"),
    [
        (
            "",
            "Один человек погиб, шесть пострадали в столкновении легковушки и скорой в "
            "Чувашии. Причины аварии устанавливает дорожная полиция.",
            "ru",
        ),
        (
            "Менше їсти — не означає схуднути",
            "Нові дослідження показують, що важливішою є не кількість їжі, а її якість.",
            "uk",
        ),
        (
            "Шахтар переміг Динамо у фіналі Кубка України",
            "Футбольний клуб Шахтар здобув трофей у фіналі, забивши два м'ячі.",
            "uk",
        ),
    ],
)
def test_cyrillic_stage_rejects_everyday_news(title: str, body: str, language: str) -> None:
    assert not classify(title=title, body=body, language=language).is_ukraine_security


def test_other_cyrillic_languages_keep_the_rules() -> None:
    title, body, _ = NON_ENGLISH_POSITIVES["ru"]
    result = classify(title=title, body=body, language="bg")
    assert "model" not in result.evidence
    assert result.score == classify_rules_only(title=title, body=body).score


def test_full_article_subject_after_a_colour_lead_is_found_in_a_body_window() -> None:
    _title, body = _seed()
    colour = (
        "The morning was grey and cold. Commuters queued for coffee outside the station, "
        "and the market traders set out their stalls as they have done for decades. "
    ) * 8  # about 1,300 characters of scene-setting before the subject
    lead_only = classify(title="A long week", body=colour[:1000], language="en")
    assert not lead_only.is_ukraine_security
    result = classify(title="A long week", body=colour + body, language="en")
    assert result.is_ukraine_security, result.evidence.get("model")
    assert result.evidence["model"][0].startswith("body_window=")


def test_rules_only_path_has_no_model_evidence() -> None:
    title, body = _seed()
    result = classify_rules_only(title=title, body=body)
    assert result.is_ukraine_security
    assert "model" not in result.evidence
    assert result.version == CLASSIFIER_VERSION


# --- robustness -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(title=st.text(max_size=300), body=st.text(max_size=3000))
def test_any_text_gives_bounded_score_and_never_raises(title: str, body: str) -> None:
    result = classify(title=title, body=body)
    assert 0.0 <= result.score <= 1.0
    assert set(result.topics) <= set(TOPICS)
    json.dumps(result.evidence)


def test_empty_input() -> None:
    result = classify(title="", body="")
    assert result.score == 0.0
    assert not result.is_ukraine_security


def test_long_body_completes() -> None:
    _, body = _seed()
    long_body = (body + "\n") * (20_000 // len(body) + 1)
    result = classify(title="Long article", body=long_body[:20_000])
    assert 0.0 <= result.score <= 1.0


# --- committed labels: held-out figures ------------------------------------------------------


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data not available")
def test_held_out_precision_and_recall_meet_recorded_figures() -> None:
    from eval.classifier_eval import load_items, metrics, run

    items = [item for item in load_items(DATA_DIR) if item.split == "test"]
    assert len(items) > 400
    m = metrics(run(items))
    assert m.precision >= TEST_SPLIT_MIN_PRECISION, m
    assert m.recall >= TEST_SPLIT_MIN_RECALL, m


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data not available")
@pytest.mark.parametrize(
    ("split", "size", "min_precision", "min_recall"),
    [
        ("test2", 1200, TEST2_MIN_PRECISION, TEST2_MIN_RECALL),
        ("test4", 1000, TEST4_MIN_PRECISION, TEST4_MIN_RECALL),
    ],
)
def test_later_held_out_splits_meet_recorded_figures(
    split: str, size: int, min_precision: float, min_recall: float
) -> None:
    from eval.classifier_eval import load_items, metrics, run

    items = [item for item in load_items(DATA_DIR) if item.split == split]
    assert len(items) == size
    m = metrics(run(items))
    assert m.precision >= min_precision, m
    assert m.recall >= min_recall, m


# ml_test (eval/labels/MULTILINGUAL_PLAN.md, CYRILLIC2_PLAN.md), hybrid-2026.12.9: Ukrainian
# P 0.716 / R 0.811 (116/46/27), Russian P 0.897 / R 0.848 (78/9/14); rounded down.
ML_TEST_FLOORS = {"uk": (400, 0.71, 0.81), "ru": (600, 0.89, 0.84)}


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data not available")
@pytest.mark.parametrize("language", sorted(ML_TEST_FLOORS))
def test_ukrainian_and_russian_held_out_figures_meet_recorded_floors(language: str) -> None:
    from eval.classifier_eval import load_items, metrics, run

    size, min_precision, min_recall = ML_TEST_FLOORS[language]
    items = [i for i in load_items(DATA_DIR) if i.split == "ml_test" and i.language == language]
    assert len(items) == size
    m = metrics(run(items))
    assert m.precision >= min_precision, m
    assert m.recall >= min_recall, m
