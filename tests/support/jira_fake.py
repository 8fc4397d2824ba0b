"""A local Jira for tests: every request is checked against Atlassian's own OpenAPI spec.

The spec (../shared/data/jira/swagger-v3.v3.json) describes REST v3; Server/Data Center's v2 has the same
paths under /rest/api/2, so v2 requests are matched against the same operations, and only v3 bodies must
be Atlassian Document Format. A request is a violation when its path and method are not an operation of
the spec, a query parameter is not declared (or a required one is missing), its JSON body does not
validate against the operation's schema, or a v3 rich-text field is not an ADF document. Answers are
built to the spec's response schemas and checked against them too.
"""

from __future__ import annotations

import json
import re
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from jsonschema import Draft7Validator

from tests.support.env import SHARED
from tests.support.http_fakes import JsonHandler

SPEC_PATH = SHARED / "data" / "jira" / "swagger-v3.v3.json"
ADF_NODES = {"doc", "paragraph", "text", "hardBreak", "blockquote", "heading", "bulletList", "listItem",
             "orderedList", "codeBlock", "rule", "mention", "emoji", "inlineCard", "panel"}


@cache
def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


class SpecValidator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        routes = []
        for template, operations in spec["paths"].items():
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            routes.append((template.count("{"), re.compile(f"^{pattern}$"), template, operations))
        # Literal paths win over templated ones (/issue/createmeta before /issue/{issueIdOrKey}).
        self.routes = sorted(routes, key=lambda route: route[0])

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        v3_path = re.sub(r"^/rest/api/2/", "/rest/api/3/", path)
        for _, pattern, template, operations in self.routes:
            if pattern.match(v3_path) and method.lower() in operations:
                return template, operations[method.lower()]
        return None

    def schema_errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        validator = Draft7Validator({**schema, "components": self.spec["components"]})
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
                for error in validator.iter_errors(value)]

    def check_request(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path} is not an operation of the Jira spec"]
        template, operation = found
        problems = []
        declared = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
        problems += [f"{method} {template}: undeclared query parameter {name!r}"
                     for name in query if name not in declared]
        problems += [f"{method} {template}: missing required query parameter {name!r}"
                     for name, parameter in declared.items() if parameter.get("required") and name not in query]
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and content is None:
            problems.append(f"{method} {template} takes no JSON body")
        elif content is not None:
            if body is None and operation["requestBody"].get("required"):
                problems.append(f"{method} {template}: the body is required")
            elif body is not None:
                problems += [f"{method} {template} body {error}"
                             for error in self.schema_errors(content["schema"], body)]
        if path.startswith("/rest/api/3/") and isinstance(body, dict):
            rich = [body["fields"].get("description")] if isinstance(body.get("fields"), dict) else []
            rich += [body["body"]] if "body" in body else []
            problems += [f"{method} {template}: {error}" for value in rich if value is not None
                         for error in adf_errors(value)]
        return problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        found = self.operation(method, path)
        assert found is not None
        template, operation = found
        content = operation.get("responses", {}).get(str(status), {}).get("content", {}).get("application/json")
        if content is None:
            return [f"{method} {template}: the spec has no JSON {status} answer"]
        return [f"answer to {method} {template}: {error}" for error in self.schema_errors(content["schema"], body)]


def adf_errors(node: Any, depth: int = 0) -> list[str]:
    """Structural checks of an Atlassian Document Format document (the spec types it loosely)."""
    if not isinstance(node, dict) or node.get("type") not in ADF_NODES:
        return [f"not an ADF node: {str(node)[:60]}"]
    if depth == 0 and (node["type"] != "doc" or node.get("version") != 1):
        return ["an ADF document must be {type: doc, version: 1}"]
    if node["type"] == "text" and not (isinstance(node.get("text"), str) and node["text"]):
        return ["an ADF text node needs non-empty text"]
    return [error for child in node.get("content", []) for error in adf_errors(child, depth + 1)]


def adf_text(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return str(node.get("text", "")) + " ".join(adf_text(child) for child in node.get("content", []))
    return ""


class FakeJira:
    """Issues, comments and statuses in memory; ``violations`` collects every spec breach."""

    def __init__(self, cloud: bool) -> None:
        self.cloud = cloud
        self.validator = SpecValidator(load_spec())
        self.issues: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeJira:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_status(self, key: str, name: str, category: str = "done") -> None:
        self.issues[key]["status"] = {"name": name, "category": category}

    def _issue_bean(self, issue: dict[str, Any]) -> dict[str, Any]:
        status = issue["status"]
        return {"id": issue["id"], "key": issue["key"], "self": f"{self.url}/rest/api/3/issue/{issue['id']}",
                "fields": {"summary": issue["fields"]["summary"], "labels": issue["fields"].get("labels", []),
                           "status": {"name": status["name"], "id": "1", "self": f"{self.url}/status/1",
                                      "statusCategory": {"key": status["category"], "id": 3, "name": status["name"]}}}}

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        api = "/rest/api/3/" if self.cloud else "/rest/api/2/"
        rest = path[len(api):] if path.startswith(api) else None
        if rest == "serverInfo":
            return 200, {"baseUrl": self.url, "version": "1001.0.0" if self.cloud else "9.12.0",
                         "versionNumbers": [1001, 0, 0] if self.cloud else [9, 12, 0],
                         "deploymentType": "Cloud" if self.cloud else "Server", "serverTitle": "Fake Jira"}
        if rest == "field":
            return 200, [{"id": "summary", "name": "Summary", "clauseNames": ["summary"]},
                         {"id": "status", "name": "Status", "clauseNames": ["status"]},
                         {"id": "labels", "name": "Labels", "clauseNames": ["labels"]}]
        if rest == "issue" and method == "POST":
            number = len(self.issues) + 1
            key = f"{body['fields']['project']['key']}-{number}"
            self.issues[key] = {"id": str(10000 + number), "key": key, "fields": body["fields"], "comments": [],
                                "status": {"name": "To Do", "category": "new"}}
            return 201, {"id": str(10000 + number), "key": key, "self": f"{self.url}{api}issue/{10000 + number}"}
        if rest in ("search/jql", "search"):
            label = re.search(r'labels = "([^"]+)"', query["jql"][0])
            found = [self._issue_bean(i) for i in self.issues.values()
                     if label and label.group(1) in i["fields"].get("labels", [])]
            if rest == "search/jql":
                return 200, {"issues": found, "isLast": True}
            return 200, {"issues": found, "startAt": 0, "maxResults": 50, "total": len(found)}
        match = re.match(r"^issue/([^/]+)(/comment)?$", rest or "")
        if match:
            issue = next((i for i in self.issues.values() if match.group(1) in (i["key"], i["id"])), None)
            if issue is None:
                return 404, {"errorMessages": ["Issue does not exist"], "errors": {}}
            if match.group(2) and method == "POST":
                comment = {"id": str(len(issue["comments"]) + 1), "body": body["body"],
                           "self": f"{self.url}{api}issue/{issue['id']}/comment/{len(issue['comments']) + 1}"}
                issue["comments"].append(comment)
                return 201, comment
            if match.group(2):
                return 200, {"comments": issue["comments"], "startAt": 0, "maxResults": 5000,
                             "total": len(issue["comments"])}
            return 200, self._issue_bean(issue)
        return 404, {"errorMessages": [f"the fake has no answer for {method} {path}"], "errors": {}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def _serve(self) -> None:
                url = urlparse(self.path)
                body = self.read_json()
                query = parse_qs(url.query)
                with fake.lock:
                    fake.requests.append((self.command, url.path))
                    problems = fake.validator.check_request(self.command, url.path, query, body)
                    if problems:
                        fake.violations += problems
                        status, answer = 400, {"errorMessages": problems, "errors": {}}
                    else:
                        status, answer = fake.answer(self.command, url.path, query, body)
                        if status < 300:
                            fake.violations += fake.validator.check_response(self.command, url.path, status,
                                                                             answer)
                self.send_json(status, answer)

            do_GET = do_POST = do_PUT = _serve  # noqa: N815 (http.server's naming)

        return Handler
