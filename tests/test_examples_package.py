"""The example third-party plugin (examples/feedbackloop-typeform) installs with pip and works unchanged.

pip builds and installs it into a temporary target directory (no dependencies: feedbackloop is already
here); a fresh interpreter with that directory on its path then finds the plugin through its
``feedbackloop`` entry point, the CLI adds a channel of the new type, and a signed delivery is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "feedbackloop-typeform"
SECRET = "typeform-test-secret"

DELIVER = """
import json, sys
from fastapi.testclient import TestClient
from api.app import create_app
from core.settings import get_settings
body, signature = sys.argv[1].encode(), sys.argv[2]
with TestClient(create_app(get_settings())) as client:
    answer = client.post("/webhooks/survey", content=body, headers={"Typeform-Signature": signature})
    forged = client.post("/webhooks/survey", content=body, headers={"Typeform-Signature": "sha256=AAAA"})
    again = client.post("/webhooks/survey", content=body, headers={"Typeform-Signature": signature})
    app = client.app
    with app.state.loop.session() as session:
        from core.models import FeedbackItem
        rows = [(i.text_original, i.customer_tier, i.metadata_json) for i in session.query(FeedbackItem)]
print(json.dumps({"status": [answer.status_code, forged.status_code, again.status_code],
                  "answer": answer.json(), "rows": rows}))
"""


def typeform_event() -> bytes:
    return json.dumps({
        "event_id": "01HTEST", "event_type": "form_response",
        "form_response": {
            "form_id": "lT4Z3j", "token": "a3a12ec67a1365927098a606107fac15", "submitted_at": "2026-01-18T18:17:02Z",
            "hidden": {"plan": "enterprise", "email": "ana@example.com"},
            "answers": [
                {"type": "number", "number": 4, "field": {"id": "f1", "type": "opinion_scale", "ref": "nps"}},
                {"type": "text", "text": "Exports to Excel keep timing out",
                 "field": {"id": "f2", "type": "long_text", "ref": "improve"}},
            ],
        },
    }).encode()


def test_example_package_installs_and_its_channel_works(tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    assert list(target.glob("feedbackloop_typeform-0.1.0.dist-info/entry_points.txt"))
    env = {**os.environ, "PYTHONPATH": str(target), "FEEDBACKLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}",
           "FEEDBACKLOOP_SECRET_TF": SECRET, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("FEEDBACKLOOP_LOAD_PLUGINS", None)  # unset: every installed plugin loads

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)

    plugins = run("-m", "core", "plugins")
    assert plugins.returncode == 0 and "typeform" in plugins.stdout
    added = run("-m", "core", "channels", "add", "survey", "--plugin", "typeform",
                "--secret-env", "FEEDBACKLOOP_SECRET_TF", "--option", "fields=improve", "--option", "tier_field=plan")
    assert added.returncode == 0, added.stdout + added.stderr
    body = typeform_event()
    signature = "sha256=" + base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    delivered = run("-c", DELIVER, body.decode(), signature)
    assert delivered.returncode == 0, delivered.stderr
    result = json.loads(delivered.stdout.strip().splitlines()[-1])
    assert result["status"] == [202, 401, 202]
    assert result["answer"]["created"] == 1
    [(text, tier, metadata)] = result["rows"]
    assert text == "Exports to Excel keep timing out" and tier == "enterprise"
    assert metadata["question"] == "improve" and "email" not in metadata
