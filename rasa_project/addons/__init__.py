"""The fan assistant's add-ons to Rasa 3.6, imported by `rasa run` (cwd rasa_project).

`channel` is the input channel the bot talks to, `tracker_store` keeps trackers in memory
with an idle expiry, `decide` is the out-of-domain and rescue logic around Rasa's
classification, `train` trains the model when stale. See docs/model-server.md.
"""
