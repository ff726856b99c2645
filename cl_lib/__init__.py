"""cl_lib: the small library behind the executable textbook *Continual Learning with Pre-trained Models*.

Modules: `config` (book.toml, profiles), `data` (data sets), `streams` (task splits), `backbones`
(pretrained models), `features` (cached frozen features), `train` (loop, accuracy matrix), `metrics`,
`shift` (CKA, layer hooks), `plots` (figures), `cache` (atomic on-disk cache); `methods/` holds one
module per paper's method.
"""
__version__ = "0.1.0"
