"""`stf export-interfaces DIR`: the `stf_msgs` interfaces as an ament_cmake package.

A ROS 2 workspace that builds this package (colcon) gets the real typesupport for our types,
so `ros2 topic echo /stf/hbw/state` works on a ROS 2 machine running rmw_zenoh. The package
holds the same `.msg`/`.srv` files, a format-3 package.xml and a CMakeLists.txt calling
`rosidl_generate_interfaces` over all of them with the packages they depend on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rosbags.typesys.base import Nodetype

from stf_nodes.interfaces import PROJECT_INTERFACES_DIR, PROJECT_PACKAGE, _store, list_interfaces

VERSION = '0.1.0'


def _dependencies() -> list[str]:
    """Packages whose types the project's interfaces reference."""
    store = _store()
    found: set[str] = set()
    for name, (_, fields) in store.fielddefs.items():
        if not name.startswith(f'{PROJECT_PACKAGE}/'):
            continue
        for _, (kind, rest) in fields:
            nested = (
                rest
                if kind == Nodetype.NAME
                else (rest[0][1] if kind != Nodetype.BASE and rest[0][0] == Nodetype.NAME else None)
            )
            if isinstance(nested, str):
                found.add(nested.split('/')[0])
    found.discard(PROJECT_PACKAGE)
    return sorted(found)


def export_interface_package(directory: Path) -> Path:
    """Write the package into `directory` (created if needed); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for kind in ('msg', 'srv'):
        (directory / kind).mkdir(exist_ok=True)
        for name in list_interfaces():
            if name.startswith(f'{PROJECT_PACKAGE}/{kind}/'):
                file_name = f'{name.rsplit("/", 1)[-1]}.{kind}'
                shutil.copyfile(
                    PROJECT_INTERFACES_DIR / kind / file_name, directory / kind / file_name
                )
                files.append(f'{kind}/{file_name}')
    dependencies = _dependencies()
    depends = '\n'.join(f'  <depend>{dep}</depend>' for dep in dependencies)
    (directory / 'package.xml').write_text(f"""<?xml version="1.0"?>
<?xml-model href="http://download.ros.org/schema/package_format3.xsd" schematypens="http://www.w3.org/2001/XMLSchema"?>
<package format="3">
  <name>{PROJECT_PACKAGE}</name>
  <version>{VERSION}</version>
  <description>Interfaces of the STF Digital Twin (smart tabletop factory).</description>
  <maintainer email="maintainers@stf-digital-twin.invalid">STF Digital Twin maintainers</maintainer>
  <license>Apache-2.0</license>

  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
{depends}
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>

  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
""")
    listed = '\n'.join(f'  "{f}"' for f in files)
    finds = '\n'.join(f'find_package({dep} REQUIRED)' for dep in dependencies)
    (directory / 'CMakeLists.txt').write_text(f"""cmake_minimum_required(VERSION 3.8)
project({PROJECT_PACKAGE})

find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
{finds}

rosidl_generate_interfaces(${{PROJECT_NAME}}
{listed}
  DEPENDENCIES {' '.join(dependencies)}
)

ament_export_dependencies(rosidl_default_runtime)
ament_package()
""")
    return directory
