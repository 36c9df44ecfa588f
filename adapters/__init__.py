"""First-party harness plugins, one sub-package per paper plus ``generic``.

Import name ``harness_adapters`` (this folder is mapped to it in pyproject.toml): a
top-level package called ``adapters`` would collide with AdapterHub's ``adapters``
package, which ML users install next to transformers.
"""
