"""Where the shared corpus of real webhook bodies and e-mails is: ``../shared/corpus``
beside the project root (tests that read it skip when it is absent)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"
