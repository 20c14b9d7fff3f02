"""dzops: one safe, repeatable command per duty of a Dzongkhag ICT Services Unit."""

__version__ = "0.1.0"
