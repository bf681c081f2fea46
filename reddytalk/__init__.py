"""ReddyTalk: an AI receptionist for medical clinics.

The domain (dialogue, scheduling, calls, privacy) lives here next to the provider
adapters in ``reddytalk.providers``; the domain never imports an adapter. The one
place that picks adapters from configuration is ``reddytalk.composition``.
"""
