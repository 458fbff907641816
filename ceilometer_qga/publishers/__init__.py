# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Publishers: where samples go, chosen by URL as in Ceilometer's pipeline.

:func:`load_publishers` is the one entry point callers use: it reads
``[qga_polling] publishers`` and returns one publisher per URL, each found
by its scheme in the ``ceilometer_qga.publishers`` entry-point namespace
(``notifier``, ``file``).  Callers never import a publisher module.

The helpers below (:func:`url_error`, :func:`query_params` and the typed
getters) are for publisher plugins: every URL problem becomes a
``ValueError`` that names the option and the URL, so that an operator who
mistyped one line of the configuration file is told which one.
"""

from __future__ import annotations

from collections.abc import Iterable
import urllib.parse

from oslo_config import cfg

from ceilometer_qga import plugins
from ceilometer_qga.publishers import base
from ceilometer_qga.publishers.base import display_url  # noqa: F401

NAMESPACE = 'ceilometer_qga.publishers'
GROUP_SUFFIX = base.GROUP_SUFFIX
OPTION = '[qga_polling] publishers'


def url_error(url: str | urllib.parse.SplitResult, reason: str) -> ValueError:
    """A ValueError for a bad publisher URL, naming the option and the URL."""
    if isinstance(url, urllib.parse.SplitResult):
        url = display_url(url)
    return ValueError(f'{OPTION}: bad publisher URL {url!r}: {reason}')


def query_params(url: urllib.parse.SplitResult,
                 allowed: Iterable[str]) -> dict[str, list[str]]:
    """The query of a publisher URL as ``{name: [values]}``.

    :raises ValueError: (naming the option) for a malformed query or a
        parameter not in ``allowed``.
    """
    allowed = sorted(allowed)
    try:
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True,
                                       strict_parsing=bool(url.query))
    except ValueError as exc:
        raise url_error(url, f'malformed query: {exc}') from exc
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise url_error(url, 'unknown parameter(s) %s; this publisher takes %s'
                        % (', '.join(unknown), ', '.join(allowed) or 'none'))
    return params


def int_param(url: urllib.parse.SplitResult, params: dict[str, list[str]],
              name: str, default: int, minimum: int) -> int:
    """An integer query parameter (the last one wins, as in Ceilometer)."""
    if name not in params:
        return default
    text = params[name][-1]
    try:
        value = int(text)
    except ValueError:
        raise url_error(url, f'{name}={text!r} is not an integer') from None
    if value < minimum:
        raise url_error(url, f'{name} must be at least {minimum}, not {value}')
    return value


def float_param(url: urllib.parse.SplitResult, params: dict[str, list[str]],
                name: str, default: float, minimum: float) -> float:
    """A number query parameter (the last one wins, as in Ceilometer)."""
    if name not in params:
        return default
    text = params[name][-1]
    try:
        value = float(text)
    except ValueError:
        raise url_error(url, f'{name}={text!r} is not a number') from None
    if not minimum <= value < float('inf'):
        raise url_error(url, f'{name} must be a finite number of at least '
                        f'{minimum:g}, not {text}')
    return value


def _publisher(conf: cfg.ConfigOpts,
               url: urllib.parse.SplitResult) -> base.Publisher:
    """The publisher of ``url``, built with its own group."""
    option = '%s: bad publisher URL %r: scheme' % (OPTION, display_url(url))
    [(_name, publisher)] = plugins.load(
        NAMESPACE, [url.scheme], option, 'publisher', args=(conf, url),
        conf=conf, group_suffix=GROUP_SUFFIX)
    return publisher


def _split(text: str) -> urllib.parse.SplitResult:
    if not text.strip():
        raise url_error(text, 'the URL is empty')
    try:
        url = urllib.parse.urlsplit(text.strip())
    except ValueError as exc:
        raise url_error(text, str(exc)) from exc
    if not url.scheme:
        raise url_error(text, 'no scheme; write e.g. notifier:// or '
                              'file:///var/lib/qga/samples.jsonl')
    return url


def load_publishers(conf: cfg.ConfigOpts) -> list[base.Publisher]:
    """Build one publisher per URL in ``[qga_polling] publishers``.

    Nothing is connected or opened here: publishers reach their
    destination on the first :meth:`~base.Publisher.publish`.

    :raises ValueError: naming ``[qga_polling] publishers`` and the URL, for
        a malformed URL, an unknown scheme or parameters a publisher
        refuses.  Publishers built before the bad URL are closed first.
    """
    publishers: list[base.Publisher] = []
    try:
        for text in conf.qga_polling.publishers:
            url = _split(text)
            publishers.append(_publisher(conf, url))
    except BaseException:
        for publisher in publishers:
            publisher.close()
        raise
    return publishers
