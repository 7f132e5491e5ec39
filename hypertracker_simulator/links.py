"""Pre-signed file links as S3 makes and checks them (a simplified AWS SigV4 query signature)."""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, unquote, urlencode

BUCKET = "hypertracker-exports"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
ONE_AUTH_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
    "string parameter or the Authorization header should be specified"
)
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


@dataclass(frozen=True)
class FileKey:
    """What a file path names: a coin's heatmap file in one data version."""

    coin: str
    version: int
    gzipped: bool


@dataclass(frozen=True)
class S3Error:
    """A refusal of the file host: status, S3 error code and message."""

    status: int
    code: str
    message: str

    def xml(self) -> bytes:
        """The error as S3's XML body."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>"
        ).encode()


def file_path(key: FileKey) -> str:
    """The object path of a heatmap file on the file host."""
    suffix = ".json.gz" if key.gzipped else ".json"
    return f"/{BUCKET}/{quote(key.coin, safe='')}/liquidation-heatmap-v{key.version}{suffix}"


def file_key(path: str) -> FileKey | None:
    """The heatmap file an object path names, or None."""
    parts = path.split("/")
    if len(parts) != 4 or parts[1] != BUCKET or not parts[3].startswith("liquidation-heatmap-v"):
        return None
    version, _, suffix = parts[3].removeprefix("liquidation-heatmap-v").partition(".")
    if not version.isdigit() or suffix not in ("json", "json.gz"):
        return None
    return FileKey(unquote(parts[2]), int(version), suffix == "json.gz")


def signature(secret: bytes, path: str, amz_date: str, expires: str) -> str:
    """The signature of a path, signing time and lifetime under the host's secret."""
    message = f"{path}\n{amz_date}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def presigned_url(base_url: str, secret: bytes, key: FileKey, signed_at: datetime, ttl: int) -> str:
    """A link to a file that works without credentials until signed_at + ttl seconds."""
    path = file_path(key)
    amz_date = signed_at.strftime(AMZ_DATE_FORMAT)
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(ttl),
        "X-Amz-Signature": signature(secret, path, amz_date, str(ttl)),
    }
    return f"{base_url}{path}?{urlencode(query)}"


def refusal(
    secret: bytes, path: str, query: dict[str, str], has_authorization: bool, now: datetime
) -> S3Error | None:
    """Why S3 refuses a request for a pre-signed object, or None when it serves it."""
    if has_authorization:
        return S3Error(400, "InvalidArgument", ONE_AUTH_MECHANISM)
    amz_date, expires = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
    if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or "X-Amz-Signature" not in query:
        return S3Error(403, "AccessDenied", "Access Denied")
    expected = signature(secret, path, amz_date, expires)
    if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
        return S3Error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=now.tzinfo)
    if now > signed_at + timedelta(seconds=int(expires)):
        return S3Error(403, "AccessDenied", "Request has expired")
    return None
