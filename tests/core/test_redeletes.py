"""A DELETE of an object already being deleted: decided only when it changes the deletion."""

from __future__ import annotations

import pytest

from jitgate.core.admission.redeletes import DeleteRequest, PendingDeletion, changes_nothing

TERMINATING = PendingDeletion(grace_period=30, finalizers=())
ORPHANING = PendingDeletion(grace_period=0, finalizers=("orphan", "example.com/hold"))
FOREGROUND = PendingDeletion(grace_period=0, finalizers=("foregroundDeletion",))


@pytest.mark.parametrize(
    ("pending", "request_", "nothing"),
    [
        # The API server's own second call, and a DELETE repeated as it was.
        (TERMINATING, DeleteRequest(grace_period=30), True),
        (TERMINATING, DeleteRequest(grace_period=30, propagation_policy="Background"), True),
        (TERMINATING, DeleteRequest(), True),
        (TERMINATING, DeleteRequest(grace_period=60), True),  # only shorter periods apply
        # A shorter grace period, a forced removal: the pod goes sooner.
        (TERMINATING, DeleteRequest(grace_period=5), False),
        (TERMINATING, DeleteRequest(grace_period=0), False),
        # Another collection of the dependents than the finalizers carry.
        (TERMINATING, DeleteRequest(propagation_policy="Orphan"), False),
        (TERMINATING, DeleteRequest(propagation_policy="Foreground"), False),
        (TERMINATING, DeleteRequest(orphan_dependents=True), False),
        (ORPHANING, DeleteRequest(propagation_policy="Orphan"), True),
        (ORPHANING, DeleteRequest(), True),
        (ORPHANING, DeleteRequest(propagation_policy="Background"), False),
        (ORPHANING, DeleteRequest(orphan_dependents=False), False),
        (FOREGROUND, DeleteRequest(propagation_policy="Foreground"), True),
        (FOREGROUND, DeleteRequest(propagation_policy="Background"), False),
    ],
)
def test_only_a_delete_that_leaves_the_pending_deletion_as_it_is_changes_nothing(
    pending: PendingDeletion, request_: DeleteRequest, nothing: bool
) -> None:
    assert changes_nothing(pending, request_) is nothing
