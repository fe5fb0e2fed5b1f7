"""The C4 peer of `detect bench --design c4`: torchvision's own parts assembled as R50-C4.

The design GluonCV trains for the paper's Table 8 (faster_rcnn_resnet50_v1b_voc) and
detectron2 calls R50-C4, built from torchvision's pieces: ResNet-50's stem and layers 1-3 as
the backbone (stride 16, 1024 channels), an RPN over that one map with 15 anchors per position
(sizes 32-512, ratios 0.5/1/2), one 14x14 RoIAlign (sampling ratio 2) on it, layer4 and global
average pooling as the box head, and a class-specific box predictor; frozen batch norm,
stem and layer1 frozen (layers 2-4 trained). The numbers are the C4 recipe's
(configs/detection/voc-c4.toml, detection/src/model/config.rs `DetectorConfig::c4`): 12000
/ 2000 proposals kept before / after NMS in training and 6000 / 300 in testing, RPN NMS at
0.7, 256 anchors and 128 RoIs (a quarter positive) sampled per image, boxes kept above score
0.01 after NMS at 0.3, box weights (10, 10, 5, 5). References: GluonCV
gluoncv/model_zoo/faster_rcnn/faster_rcnn.py and rcnn_target.py at the paper's commit;
detectron2 configs/COCO-Detection/faster_rcnn_R_50_C4_1x.yaml; torchvision
models/detection/faster_rcnn.py (whose constructor takes each of these parts).

Random images of one size (already at min_size/max_size, so the transform's resize keeps
it), three boxes each, one image per step as GluonCV trains C4; a training step (the four
losses summed, backward, SGD step) and inference (eval mode, no grad), after warm-up, one
sync per timed window: bench/detect_torchvision.py's timing, which this imports.

    python bench/detect_c4_torchvision.py --batch 1 --size 600/1000 --threads 2
"""
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from detect_torchvision import arguments, bench


def r50_c4(num_classes, short, long):
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = nn.Sequential(
        body.conv1, body.bn1, body.relu, body.maxpool, body.layer1, body.layer2, body.layer3
    )
    backbone.out_channels = 1024
    # Stem and layer1 frozen, as torchvision's trainable_backbone_layers=3 and GluonCV's
    # train_patterns leave them.
    for module in (body.conv1, body.layer1):
        for q in module.parameters():
            q.requires_grad_(False)
    box_head = nn.Sequential(body.layer4, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return FasterRCNN(
        backbone,
        min_size=short,
        max_size=long,
        rpn_anchor_generator=AnchorGenerator(
            sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)
        ),
        rpn_pre_nms_top_n_train=12000,
        rpn_pre_nms_top_n_test=6000,
        rpn_post_nms_top_n_train=2000,
        rpn_post_nms_top_n_test=300,
        rpn_nms_thresh=0.7,
        rpn_batch_size_per_image=256,
        rpn_positive_fraction=0.5,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=14, sampling_ratio=2),
        box_head=box_head,
        box_predictor=FastRCNNPredictor(2048, num_classes + 1),
        box_score_thresh=0.01,
        box_nms_thresh=0.3,
        box_batch_size_per_image=128,
        box_positive_fraction=0.25,
        bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
    )


def main():
    bench(arguments(__doc__, "600/1000", 1), "c4", r50_c4)


if __name__ == "__main__":
    main()
