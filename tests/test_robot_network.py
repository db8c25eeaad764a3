"""The network Robot suite (robot/network.robot) runs and passes on the emulator."""

import pytest

from atomsim.core.paths import REPO_ROOT
from atomsim.robot import run as robot_run

pytestmark = pytest.mark.firmware


def test_network_suite_passes(tmp_path):
    suite = REPO_ROOT / "robot" / "network.robot"
    code = robot_run.main(["--outputdir", str(tmp_path), "--quiet", str(suite)])
    assert code == 0, (tmp_path / "output.xml").read_text()[-4000:]
    output = (tmp_path / "output.xml").read_text()
    assert output.count('<status status="PASS"') >= 3
