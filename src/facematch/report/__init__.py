"""Result tables: the rows ``facematch-report`` gathers rendered as Markdown, and the docs tables rendered
from the result files the repository keeps."""
