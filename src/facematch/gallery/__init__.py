"""1:N search: a gallery of enrolled faces on disk (:mod:`.store`), its faiss index (:mod:`.index`) and the
search of a photo's faces against it (:mod:`.search`); ``facematch-gallery`` is the command line."""
