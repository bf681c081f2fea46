"""The admin API's domain: who is asking (:mod:`.auth`) and what they may see and do
with clinics, calls and messages (:mod:`.console`)."""
