"""schemathesis hooks of scripts/schemathesis.sh.

Signs webhook deliveries (`POST /v1/webhooks/{source}`) the way a lead provider does
(Standard Webhooks, the secret in SCHEMATHESIS_WEBHOOK_SECRET), so schemathesis reaches
the handler behind the signature check instead of only ever seeing 401. The body is
serialized here, once, so the signed bytes are the sent bytes.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis
from schemathesis.core import NOT_SET


@schemathesis.auth().apply_to(path="/v1/webhooks/{source}")
class StandardWebhooksSignature:
    def get(self, case, context):
        secret = os.environ["SCHEMATHESIS_WEBHOOK_SECRET"]
        return base64.b64decode(secret.removeprefix("whsec_"))

    def set(self, case, key, context):
        body = case.body
        if body is NOT_SET:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode()
            case.body = payload
        webhook_id = f"msg_{uuid.uuid4().hex}"
        timestamp = str(int(time.time()))
        signed = f"{webhook_id}.{timestamp}.".encode() + payload
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        case.headers = {
            **(case.headers or {}),
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{signature}",
        }
