"""The shared corpus is found beside the project, wherever the checkout lives."""

from pathlib import Path

from django.conf import settings

from tests.corpus import CORPUS, PROJECT_ROOT


def test_the_corpus_is_read_from_beside_the_project_root():
    assert Path(settings.BASE_DIR).resolve() == PROJECT_ROOT
    assert PROJECT_ROOT.parent / "shared" / "corpus" == CORPUS


def test_no_test_reads_the_corpus_by_an_absolute_path():
    spelled_out = [
        path.relative_to(PROJECT_ROOT)
        for path in (PROJECT_ROOT / "tests").rglob("*.py")
        if path != Path(__file__).resolve() and "/work/shared" in path.read_text(encoding="utf-8")
    ]
    assert spelled_out == []
