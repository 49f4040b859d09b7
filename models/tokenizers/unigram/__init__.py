"""The in-graph SentencePiece Unigram tokenizer (XLM-R, ALBERT, multilingual MiniLM)."""
