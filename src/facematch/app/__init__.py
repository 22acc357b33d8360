"""``facematch-app``: a small web page (FastAPI, server-rendered HTML, no script, works offline) to compare
two uploaded photos and to search a gallery; :mod:`facematch.app.server` serves it, :mod:`facematch.app.pages`
writes its HTML. A top layer like :mod:`facematch.cli`: it goes the same one path of a face
(:class:`~facematch.embedding.photos.FaceEmbedder`) with the same model options as ``facematch-compare``."""
