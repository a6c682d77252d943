"""The trader's controls: pause and resume, preferences, the notification channel and /why.

Modules: :mod:`.service` (``ControlService``, the use cases and their transactions),
:mod:`.preference_input` (preference values typed or picked as text; pure),
:mod:`.notify` (checking a Telegram channel as the notification target) and
:mod:`.timeline` (what happened to one alert, step by step).
"""
