"""/delete_me."""

from __future__ import annotations

CONFIRM = (
    "<b>Delete my data</b>\n\n"
    "This removes your dYdX API trading key, your wallet link, your webhook (TradingView "
    "alerts to it stop at once) and your personal data. Your funds on dYdX are not "
    "affected, and open orders or positions stay open on dYdX.\n\n"
    "Do you want to keep your trade history (alerts, orders, fills)? If you keep it, it "
    "stays linked to your Telegram id so you see it if you come back."
)
DELETE_ALL = "Delete everything"
KEEP_HISTORY = "Delete, keep trade history"
CANCEL = "Cancel"
CANCELLED = "Nothing was deleted."
DONE_ALL = (
    "Done: everything is deleted. Remember to delete the API trading key in the dYdX app "
    "too (More → API Trading Keys). Send /start if you ever want to come back."
)
DONE_KEEP = (
    "Done: your key, wallet link, webhook and personal data are deleted; your trade history "
    "is kept. Remember to delete the API trading key in the dYdX app too (More → API "
    "Trading Keys). Send /start to use the bot again."
)
