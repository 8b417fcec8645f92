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

"""Random fault scripts for the FaultServer, drawn from a seeded RNG.

A plan is the list of :class:`~ironic_images.tests.functional.servers.
faults.Fault` (or None) applied to the next GETs of a resource, with a
short text saying what it is, for the failure message and the tally.
"""

import collections
import re

from ironic_images.tests.functional.servers import faults

# The fault classes of issue 8, with their relative weights. Stalls past
# the one-second timeout cost a second each: they are rarer.
KINDS = collections.OrderedDict([
    ('reset', 4),              # connection reset (RST) at a random offset
    ('cut', 4),                # truncated body, correct Content-Length
    ('short-length', 2),       # Content-Length smaller than the body
    ('long-length', 2),        # Content-Length larger than the body
    ('stall', 1),              # a stall past the read timeout
    ('slow', 2),               # a pause shorter than the timeout
    ('429', 2),                # 429 Too Many Requests with Retry-After
    ('503-burst', 3),          # a burst of 503
    ('changed', 2),            # another body (new ETag) on the resumed GET
    ('no-range', 1),           # Range ignored: the whole body again
    ('404', 1),                # a permanent error
])
# Faults after which no checksum-less download can tell a wrong file: a
# server that says the body is shorter than it is.
NEEDS_CHECKSUM = frozenset(['short-length'])


def _fault(rng, kind, size, other_body):
    offset = rng.randrange(1, size)
    if kind == 'reset':
        return [faults.cut(offset, reset=True)]
    if kind == 'cut':
        return [faults.cut(offset)]
    if kind == 'short-length':
        return [faults.declare_length(offset)]
    if kind == 'long-length':
        return [faults.declare_length(size + rng.randrange(1, 4096))]
    if kind == 'stall':
        return [faults.stall(offset, 1.6)]
    if kind == 'slow':
        return [faults.stall(offset, 0.2)]
    if kind == '429':
        return [faults.error(429, retry_after=rng.choice([0, 0, 0, 1]))]
    if kind == '503-burst':
        return [faults.error(503)] * rng.randint(1, 5)
    if kind == 'changed':
        return [faults.cut(offset), faults.change(body=other_body)]
    if kind == 'no-range':
        return [faults.cut(offset), faults.no_range()]
    if kind == '404':
        return [faults.error(404)]
    raise ValueError(kind)


def draw(rng, size, other_body, kinds=None, most=3):
    """Draw a plan of 0 to ``most`` faults.

    :param rng: a seeded :class:`random.Random`.
    :param size: the size of the resource's body.
    :param other_body: the body a "changed" fault serves.
    :param kinds: the fault kinds allowed (default: all).
    :returns: ``(script, names)``.
    """
    kinds = [kind for kind in KINDS if kinds is None or kind in kinds]
    weights = [KINDS[kind] for kind in kinds]
    names = rng.choices(kinds, weights, k=rng.randint(0, most))
    script = []
    for name in names:
        script.extend(_fault(rng, name, size, other_body))
        # Sometimes a normal answer between two faults.
        if rng.random() < 0.3:
            script.append(None)
    return script, names


class Tally:
    """Outcomes of a series of downloads, for the report."""

    def __init__(self):
        self.outcomes = collections.Counter()
        self.faults = collections.Counter()
        self.reasons = collections.Counter()
        self.lost = 0

    def add(self, names, outcome, error=None):
        self.faults.update(names or ['none'])
        self.outcomes[outcome] += 1
        if error is not None:
            # The reason, less what varies (ports, offsets, digests).
            reason = str(error.kwargs.get('reason', error))
            self.reasons['%s: %s' % (outcome, re.sub(
                r'[0-9a-f]{16,}|(?<!HTTP )\b\d+', 'N', reason)[:120])] += 1

    def reasons_text(self):
        return '\n'.join('%4d %s' % (count, reason) for reason, count
                         in self.reasons.most_common())

    def summary(self, title):
        return '%s: %d downloads; faults %s; outcomes %s; lost %d' % (
            title, sum(self.outcomes.values()),
            ', '.join('%s=%d' % item for item in sorted(self.faults.items())),
            ', '.join('%s=%d' % item
                      for item in sorted(self.outcomes.items())),
            self.lost)
