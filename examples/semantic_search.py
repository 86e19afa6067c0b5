"""Semantic search with pretrained sentence embeddings (all-MiniLM-L6-v2, loaded offline).

Embeds a corpus, then answers each query with the five corpus sentences whose embeddings have the highest
cosine similarity (the embeddings are unit vectors, so that is a matrix product).

The corpus is a few hundred sentences generated from templates, or the lines of a text file:

    pip install "ember[text]"
    python examples/semantic_search.py
    python examples/semantic_search.py --text ../shared/data/tinyshakespeare.txt --query "a king is dead"
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import time

import ember
from ember.models import SentenceEncoder

TOPICS = {
    "animals": (["The cat", "My old dog", "A tiny kitten", "The lazy fox", "Our parrot", "The baby elephant"],
                ["is sleeping on", "naps quietly on", "rests all afternoon on", "is curled up asleep on"],
                ["the sofa.", "a warm blanket.", "the sunny windowsill.", "the kitchen floor."]),
    "weather": (["Tomorrow", "This weekend", "On Monday", "Tonight", "In the mountains"],
                ["heavy rain is expected", "it will be sunny and warm", "strong winds will blow",
                 "snow is forecast"],
                ["across the north.", "in the city.", "near the coast.", "for most of the day."]),
    "food": (["She cooked", "We ordered", "He baked", "They shared"],
             ["a spicy curry", "a fresh pizza", "a chocolate cake", "a bowl of noodle soup"],
             ["for dinner.", "at the new restaurant.", "for the whole family.", "after the game."]),
    "sport": (["The home team", "Our striker", "The young tennis player", "The cycling champion"],
              ["won the final", "lost a close match", "broke the record", "trained hard"],
              ["on Sunday.", "in front of a huge crowd.", "despite an injury.", "last season."]),
    "computing": (["The new laptop", "This database", "The compiler", "Our web server"],
                  ["runs much faster", "crashed again", "uses less memory", "was updated"],
                  ["after the upgrade.", "under heavy load.", "on the test machine.", "this morning."]),
    "finance": (["Stock prices", "The central bank", "Oil prices", "The company's profits"],
                ["rose sharply", "fell unexpectedly", "stayed flat", "doubled"],
                ["this quarter.", "after the announcement.", "on Friday.", "over the past year."]),
}

QUERIES = ["Which animal is sleeping?", "What is the weather like?", "A delicious meal",
           "Who won the championship?", "The software became slow", "What happened on the stock market?"]


def template_corpus(size: int) -> list[str]:
    """`size` distinct sentences, the topics taking turns so that any prefix covers every topic."""
    streams = [(" ".join(words) for words in itertools.product(*parts)) for parts in TOPICS.values()]
    mixed = (s for group in itertools.zip_longest(*streams) for s in group if s is not None)
    return list(itertools.islice(mixed, size))


def text_corpus(path: pathlib.Path, size: int) -> list[str]:
    """The first `size` distinct lines of `path` with at least four words."""
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if len(line.split()) >= 4:
            seen.setdefault(line)
        if len(seen) == size:
            break
    return list(seen)


def search(encoder: SentenceEncoder, corpus_emb: ember.Tensor, corpus: list[str], queries: list[str],
           top_k: int = 5) -> list[list[tuple[float, str]]]:
    """For each query, the `top_k` (cosine similarity, sentence) pairs, best first."""
    scores = encoder.encode(queries) @ corpus_emb.T  # unit vectors: dot product = cosine
    best = scores.topk(min(top_k, len(corpus)), dim=1)
    return [[(float(v), corpus[int(i)]) for v, i in zip(vals, idx)]
            for vals, idx in zip(best.values.tolist(), best.indices.tolist())]


def main(corpus_size: int = 300, queries: list[str] | None = None, encoder: SentenceEncoder | None = None,
         text_path: str | None = None, show: bool = True) -> list[list[tuple[float, str]]]:
    """Build the corpus, embed it, answer `queries`; returns the hits of each query."""
    encoder = SentenceEncoder.from_pretrained() if encoder is None else encoder
    corpus = text_corpus(pathlib.Path(text_path), corpus_size) if text_path else template_corpus(corpus_size)
    start = time.perf_counter()
    corpus_emb = encoder.encode(corpus, batch_size=32)
    elapsed = time.perf_counter() - start
    hits = search(encoder, corpus_emb, corpus, queries or QUERIES)
    if show:
        rate = len(corpus) / elapsed
        print(f"embedded {len(corpus)} sentences in {elapsed:.1f} s ({rate:.0f} sentences/s)")
        for query, found in zip(queries or QUERIES, hits):
            print(f"\n{query}")
            for score, sentence in found:
                print(f"  {score:.3f}  {sentence}")
    return hits


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300, help="number of corpus sentences")
    parser.add_argument("--text", default=None, help="take the corpus from the lines of this file")
    parser.add_argument("--query", action="append", help="a query (repeat for several)")
    args = parser.parse_args()
    main(args.size, args.query, text_path=args.text)
