"""Submissions: the subset file contract, the API contract and the ``tdc-submit`` client.

The bottom layer of Task-DataComp: it imports no other project package and no torch, so
participants can check a file in milliseconds::

    from submissions.errors import TdcError
"""
