"""medhe: a reviewer-grade reproduction of MedHE (arXiv 2511.09043).

Importing the package has no side effects; import the sub-modules you need
(``medhe.data``, ``medhe.model``, ``medhe.fl``, ...).
"""

__version__ = "0.1.0"
