"""Schemathesis hooks of the contract test (.ci/contract.sh)."""

import itertools
import json
import os
import urllib.request

import schemathesis

# The caller's own row. Ids it learns from answers (/users/me, lists) lead the
# fuzzer to deactivate or delete its own caller, after which every request is
# 403 and the rest of the run tests nothing. Such a request goes to a row of
# its own instead, made for it (so it is still sent and still checked, and
# answered as a change of an existing row is: a 404 there would read as "a
# created resource went missing"); with a token that may not create users,
# to an id that no row has (int64's largest).
OWN_ID = int(os.environ["CONTRACT_OWN_USER_ID"]) if os.environ.get("CONTRACT_OWN_USER_ID") else None
BASE_URL = os.environ.get("CONTRACT_BASE_URL", "")
TOKEN = os.environ.get("CONTRACT_TOKEN", "")
MISSING_ID = 9223372036854775807
CHANGES = {"PUT", "PATCH", "DELETE"}
_stand_ins = itertools.count()


def _is_own(value):
    # The server reads "+12" and "012" as 12 too.
    try:
        return OWN_ID is not None and int(str(value)) == OWN_ID
    except ValueError:
        return False


def _stand_in():
    """The id of a new row, or MISSING_ID when none could be made."""
    sub = f"contract|stand-in-{os.getpid()}-{next(_stand_ins)}"
    request = urllib.request.Request(
        f"{BASE_URL}/users",
        data=json.dumps({"sub": sub}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["id"]
    except Exception:  # 403 without create:users; anything else is the run's to find
        return MISSING_ID


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters or {}
    if case.method.upper() in CHANGES and _is_own(params.get("id")):
        params["id"] = _stand_in()
