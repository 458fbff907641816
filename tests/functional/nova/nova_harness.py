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

"""What Nova's test base classes need to run under pytest in this venv.

Nova runs its tests with stestr from a source checkout; three things differ
here, and each mixin method below undoes exactly one of them.
"""

from __future__ import annotations

import os
import sysconfig
import warnings

from sqlalchemy import exc as sqla_exc

# Nova's wheel installs api-paste.ini as data under <prefix>/etc/nova; its
# test ConfFixture looks for it under the source tree's etc/nova instead.
API_PASTE = os.path.join(sysconfig.get_path('data'), 'etc', 'nova',
                         'api-paste.ini')


class PytestCompat:
    """Mix in before a ``nova.test.TestCase`` subclass."""

    def _clear_attrs(self) -> None:
        # nova.test.TestCase deletes every public attribute after a test to
        # free memory, including the bound test method that pytest's
        # unittest plugin sets on the instance and deletes itself after the
        # run (AttributeError there).  That one attribute is kept.
        method = self.__dict__.get(self._testMethodName)
        super()._clear_attrs()
        if method is not None:
            self.__dict__[self._testMethodName] = method


class ServicesCompat(PytestCompat):
    """For ``_IntegratedTestBase`` subclasses (API and services started)."""

    def _setup_services(self) -> None:
        # Runs after nova.test.TestCase.setUp installed its ConfFixture and
        # WarningsFixture, and before the API is loaded.
        self.flags(api_paste_config=API_PASTE, group='wsgi')
        # SQLAlchemy 2.1 (in this venv) deprecates orm.noload(), which Nova
        # 34's DB API still uses; Nova's WarningsFixture turns SQLAlchemy
        # deprecations raised from nova modules into errors.
        warnings.filterwarnings(
            'ignore', message=r'The noload\(\) option is deprecated',
            category=sqla_exc.SADeprecationWarning)
        super()._setup_services()
