"""Keyword-only service functions over a ``Session``: the server's logic, free of HTTP.

    sub = submissions.create_submission(db=db, principal=p, meta=meta, staged=staged,
                                        ctx=ctx, idempotency_key=None)
    claimed = organizer_ops.claim(db=db, request=req, actor="organizer:ops", ctx=ctx)

Routes and ``tdc-server`` call these; they raise ``TdcError`` subclasses (server.errors).
"""
