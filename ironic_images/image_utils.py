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

"""Everything between an href and a safe image on disk: the public face.

The names Cinder's ``image_utils`` and Ironic's ``images`` callers know,
gathered from where they live: fetching in :mod:`ironic_images.fetch`,
format detection and the safety gate in :mod:`ironic_images.formats`,
``qemu-img`` in :mod:`ironic_images.qemu`, temp files in
:mod:`ironic_images.common.tempfiles`.
"""

from ironic_images.common import tempfiles
from ironic_images.fetch import fetcher
from ironic_images.fetch import temporary
from ironic_images.fetch import volume
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.qemu import convert as qemu_convert
from ironic_images.qemu import info as qemu_info
from ironic_images.qemu import process

FetchedImage = fetcher.FetchedImage
RAW_FORMATS = formats.DISK_FORMATS
check_available_space = fetcher.check_available_space
fetch = fetcher.fetch
fetch_to_raw = fetcher.fetch_to_raw
fetch_to_volume_format = volume.fetch_to_volume_format
FetchRequest = fetcher.FetchRequest
fetch_unchecked = fetcher.fetch_unchecked
fetch_verify_image = fetcher.fetch_verify_image

StreamInspector = inspection.StreamInspector
check_image = gate.check_image
check_image_format = qemu_info.check_image_format
check_virtual_size = gate.check_virtual_size
check_vmdk_image = qemu_info.check_vmdk_image
inspect_file = inspection.inspect_file

check_qemu_img_version = process.check_qemu_img_version
convert_image = qemu_convert.convert_image
fixup_disk_format = formats.qemu_name
from_qemu_img_disk_format = formats.from_qemu_name
get_qemu_img_version = process.get_qemu_img_version
qemu_img_info = qemu_info.qemu_img_info
resize_image = qemu_convert.resize_image

TemporaryImages = temporary.TemporaryImages
temporary_dir = tempfiles.temporary_dir
temporary_file = tempfiles.temporary_file
upload_volume = volume.upload_volume
