"""schemathesis hooks of scripts/schemathesis.sh.

Signs webhook deliveries (`POST /v1/webhooks/{source}`) the way a lead provider does
(Standard Webhooks, the secret in SCHEMATHESIS_WEBHOOK_SECRET), so schemathesis reaches
the handler behind the signature check instead of only ever seeing 401.

Two steps, because the signature covers the exact bytes sent: the auth provider marks a
case as signed (so schemathesis knows the credentials are explicit, and its
`ignored_auth` check replays the request without them and with invalid ones), and a
`requests` auth hook signs the prepared request, body as serialized, right before it
leaves. Requests whose signature headers were removed or replaced go out as they are.
"""

import base64
import hashlib
import hmac
import os
import time
import uuid

import requests
import schemathesis
from schemathesis.generation.meta import negated_parameters

SIGNATURE_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}
TO_BE_SIGNED = "v1,to-be-signed"


def _secret():
    return base64.b64decode(os.environ["SCHEMATHESIS_WEBHOOK_SECRET"].removeprefix("whsec_"))


@schemathesis.auth().apply_to(path="/v1/webhooks/{source}")
class StandardWebhooksSignature:
    def get(self, case, context):
        return _secret()

    def set(self, case, key, context):
        # A negative case that broke a signature header must reach the server broken.
        negated = negated_parameters(getattr(case, "_meta", None))
        if any(name.lower() in SIGNATURE_HEADERS for name, _ in negated):
            return
        case.headers = {
            **(case.headers or {}),
            "webhook-id": f"msg_{uuid.uuid4().hex}",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": TO_BE_SIGNED,
        }


class _Sign(requests.auth.AuthBase):
    def __call__(self, request):
        if request.headers.get("webhook-signature") != TO_BE_SIGNED:
            return request
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        signed = (
            f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + body
        )
        digest = hmac.new(_secret(), signed, hashlib.sha256).digest()
        request.headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
        return request


@schemathesis.hook
def before_call(context, case, kwargs):
    kwargs["auth"] = _Sign()
