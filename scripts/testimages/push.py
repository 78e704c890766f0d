"""A minimal registry v2 pusher (stdlib only).

It sends blobs and manifests byte for byte with the media type given, so
malformed layers and exact docker/OCI types reach the registry unchanged.
It speaks anonymous, Basic and Bearer-token auth (Docker Hub's flow).
"""

import base64
import http.client
import json
import os
import re
import urllib.parse

import blobs


class PushError(Exception):
    pass


def _parse_challenge(header):
    """'Bearer realm="x",service="y"' -> ('bearer', {'realm': 'x', 'service': 'y'})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Registry:
    def __init__(self, host, user=None, password=None):
        self.host = host  # host:port, plain http (loopback test registries only)
        self.user = user
        self.password = password
        self._auth = {}  # repository -> Authorization header value

    def _basic(self):
        raw = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _fetch_token(self, params, repo):
        query = {"service": params.get("service", ""), "scope": f"repository:{repo}:pull,push"}
        url = urllib.parse.urlsplit(params["realm"])
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
        headers = {}
        if self.user:
            headers["Authorization"] = self._basic()
        path = url.path + "?" + urllib.parse.urlencode(query)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status != 200:
            raise PushError(f"token request to {params['realm']} failed: HTTP {resp.status} {body[:200]!r}")
        data = json.loads(body)
        return "Bearer " + (data.get("token") or data["access_token"])

    def request(self, method, path, repo, body=None, body_file=None, headers=None, ok=(200, 201, 202)):
        """One request with auth; on 401 obtains credentials once and retries.

        body_file: a path whose content is streamed as the body.
        """
        headers = dict(headers or {})
        for attempt in range(2):
            if repo in self._auth:
                headers["Authorization"] = self._auth[repo]
            conn = http.client.HTTPConnection(self.host, timeout=120)
            if body_file is not None:
                headers["Content-Length"] = str(os.path.getsize(body_file))
                with open(body_file, "rb") as f:
                    conn.request(method, path, body=f, headers=headers)
                    resp = conn.getresponse()
            else:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if resp.status == 401 and attempt == 0:
                challenge = resp.getheader("WWW-Authenticate", "")
                scheme, params = _parse_challenge(challenge)
                if scheme == "basic":
                    if not self.user:
                        raise PushError(f"{self.host} wants Basic auth; give --user/--password")
                    self._auth[repo] = self._basic()
                elif scheme == "bearer":
                    self._auth[repo] = self._fetch_token(params, repo)
                else:
                    raise PushError(f"{self.host}: unknown auth challenge {challenge!r}")
                continue
            if resp.status not in ok:
                raise PushError(f"{method} {self.host}{path}: HTTP {resp.status} {data[:300]!r}")
            return resp, data
        raise PushError(f"{method} {self.host}{path}: still unauthorized after login")

    def has_blob(self, repo, digest):
        resp, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo, ok=(200, 404))
        return resp.status == 200

    def push_blob(self, repo, digest, path):
        if self.has_blob(repo, digest):
            return False
        resp, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo, body=b"", ok=(202,))
        location = resp.getheader("Location")
        if not location:
            raise PushError(f"{self.host}: upload for {repo} returned no Location")
        url = urllib.parse.urlsplit(location)
        sep = "&" if url.query else "?"
        target = url.path + ("?" + url.query if url.query else "") + sep + "digest=" + urllib.parse.quote(digest)
        self.request(
            "PUT", target, repo, body_file=path,
            headers={"Content-Type": "application/octet-stream"}, ok=(201,),
        )
        return True

    def push_manifest(self, repo, reference, media_type, data):
        self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", repo, body=data,
            headers={"Content-Type": media_type}, ok=(201,),
        )


def push_manifest_tree(reg, layout, repo, desc, reference=None):
    """Pushes a manifest (or an index and all it references) and its blobs."""
    path = layout.blob_path(desc["digest"])
    with open(path, "rb") as f:
        raw = f.read()
    doc = json.loads(raw)
    uploaded = 0
    if desc["mediaType"] in (blobs.OCI_INDEX, blobs.DOCKER_LIST):
        for child in doc["manifests"]:
            uploaded += push_manifest_tree(reg, layout, repo, child)
    else:
        for blob in [doc["config"], *doc.get("layers", [])]:
            if reg.push_blob(repo, blob["digest"], layout.blob_path(blob["digest"])):
                uploaded += 1
    reg.push_manifest(repo, reference or desc["digest"], desc["mediaType"], raw)
    return uploaded


def push_layout(reg, root, only=None):
    """Pushes every tagged ref of an OCI layout written by blobs.Layout.

    only: a set of repository names to limit to (None: all). Returns the refs pushed.
    """
    layout = blobs.Layout(root)
    with open(os.path.join(root, "index.json")) as f:
        refs = json.load(f)["manifests"]
    pushed = []
    for desc in refs:
        ref = desc["annotations"][blobs.REF_ANNOTATION]
        repo, _, tag = ref.rpartition(":")
        if only is not None and repo not in only:
            continue
        push_manifest_tree(reg, layout, repo, desc, tag)
        pushed.append(ref)
    return pushed
